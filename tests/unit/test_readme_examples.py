"""README's saga example is the one docs/workflows.md carries, which the workflow tests execute
(tests/integration/test_workflows_execution.py::test_docs_example_*)."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_readme_saga_example_is_the_executed_one():
    readme = ROOT.joinpath("README.md").read_text()
    block = re.search(r"<!-- saga-example:start -->\s*```python\n(.*?)```", readme, re.S)
    assert block, "README lost its saga example"
    docs_block = re.findall(r"```python\n(.*?)```", ROOT.joinpath("docs/workflows.md").read_text(), re.S)[0]
    assert block.group(1) == docs_block


def test_readme_names_the_two_commands():
    readme = ROOT.joinpath("README.md").read_text()
    assert "make demo" in readme and "make test" in readme
