"""Shared pytest fixtures. Tests that need ../shared/data skip where it is absent, but fail under CI=true."""
import os, pytest
from ikm_nb.utils import shared_data_dir

@pytest.fixture(scope='session')
def shared_data():
    d = shared_data_dir(required=os.environ.get('CI') == 'true')
    if d is None: pytest.skip('../shared/data not present (set IKM_SHARED_DATA)')
    return d
