from tests.prompts.conftest import policy_dir

__all__ = ["policy_dir"]  # a fixture, used by name
