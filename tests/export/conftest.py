import pytest
from onnx_fixtures import export, needs_tiny, small_checkpoint


@pytest.fixture(scope="session")
def small_ckpt():
    if needs_tiny.args[0]:
        pytest.skip(needs_tiny.kwargs["reason"])
    return small_checkpoint()


@pytest.fixture(scope="session")
def small_artifact(small_ckpt, tmp_path_factory):
    return export(small_ckpt, tmp_path_factory.mktemp("onnx") / "small")
