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
