"""The demo DEAM tree fixture for this folder's test modules (defined with the shared DEAM
helpers in `test_stage`)."""
from tests.helpers.deam import demo  # noqa: F401 - `demo` is a fixture
