"""No import cycle in any of the project's packages (import-linter's layers contract
orders server/'s subpackages; this also catches a cycle inside one of them)."""

from __future__ import annotations

import grimp
import pytest


@pytest.mark.parametrize("package", ["server", "client_core", "tui", "settings_cli"])
def test_no_module_imports_one_that_imports_it_back(package: str) -> None:
    graph = grimp.build_graph(package)
    cycles = [
        (module, imported)
        for module in graph.modules
        for imported in graph.find_modules_directly_imported_by(module)
        if imported.startswith(package) and graph.chain_exists(importer=imported, imported=module)
    ]
    assert cycles == []
