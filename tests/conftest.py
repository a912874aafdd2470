"""Shared pytest fixtures. Tests that need ../shared/data skip where it is absent, but fail under CI=true."""
import os, pytest
from ikm_nb.utils import shared_data_dir

@pytest.fixture(scope='session')
def shared_data():
    d = shared_data_dir(required=os.environ.get('CI') == 'true')
    if d is None: pytest.skip('../shared/data not present (set IKM_SHARED_DATA)')
    return d

@pytest.fixture(autouse=True)
def _default_dtype(request):
    "Each test runs with its module's `DEFAULT_DTYPE` (float32 unless the module says otherwise), whatever other modules set at import."
    import torch
    before = torch.get_default_dtype()
    torch.set_default_dtype(getattr(request.module, 'DEFAULT_DTYPE', torch.float32))
    yield
    torch.set_default_dtype(before)

@pytest.fixture(autouse=True, scope='module')
def _one_thread(request):
    "Modules with `ONE_THREAD = True` (many small tensor ops) run on one thread: on 2 shared cores it is several times faster."
    import torch
    if not getattr(request.module, 'ONE_THREAD', False):
        yield; return
    n = torch.get_num_threads(); torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
