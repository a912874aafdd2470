#!/usr/bin/env bash
# Wheels of what `ikm reproduce` needs beyond the device machine's image (papermill and a Jupyter kernel: the H200 image has
# torch, pandas, h5py, matplotlib, seaborn and tqdm, not these), for its Python 3.12, at the versions of requirements.lock,
# into .wheels-gpu/ (git-ignored here through .git/info/exclude; a device call carries it: carry ['.wheels-gpu']).
# debugpy and jedi are left out (about 10 MB, optional for ipykernel and IPython): the working tree that travels is limited
# to 64 MiB and the repository already takes about 54 MB.
#   bash scripts/gpu_wheels.sh          # then: scripts/gpu_session.sh on the device machine
set -eu
cd "$(dirname "$0")/.."
NAMES="papermill nbclient nbformat jupyter_client jupyter_core ipykernel ipython ipython_pygments_lexers traitlets pyzmq tornado comm
matplotlib-inline nest-asyncio2 fastjsonschema jsonschema jsonschema-specifications referencing rpds-py entrypoints tenacity parso
prompt_toolkit wcwidth pexpect ptyprocess stack-data executing asttokens pure_eval platformdirs fastcore"
PINS=$(for n in $NAMES; do grep -i -m1 "^${n}==" requirements.lock || { echo "no pin of $n in requirements.lock" >&2; exit 1; }; done)
grep -qx '/.wheels-gpu/' .git/info/exclude 2>/dev/null || echo '/.wheels-gpu/' >> .git/info/exclude
rm -rf .wheels-gpu
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .wheels-gpu $PINS 2>&1 | grep -v '^WARNING: Location' || true
n=$(ls .wheels-gpu/*.whl | wc -l); want=$(echo $NAMES | wc -w)
[ "$n" -eq "$want" ] || { echo "got $n wheels of $want" >&2; exit 1; }
echo "$n wheels, $(du -sh .wheels-gpu | cut -f1), in .wheels-gpu/"
