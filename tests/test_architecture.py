"""The package layering docs/commands.md's Layout states: each layer imports only layers above it, so there is no cycle."""

import ast
from pathlib import Path

import promptgd

# Top to bottom as in docs/commands.md's Layout; a module may import its own layer and the layers listed before it.
LAYERS = ["errors", "malloc", "config", "lm", "distributed", "run_dir", "data", "report", "update", "models", "evaluate", "objectives", "train", "reproduce",
          "api", "cli", "__init__", "__main__"]  # fmt: skip
ROOT = Path(promptgd.__file__).parent


def imported_layers(path: Path) -> set[str]:
    """Every promptgd layer `path` imports, at module level or inside a function (lazy imports are edges too)."""
    layers = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = [node.module] if isinstance(node, ast.ImportFrom) and node.module else []
        names += [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
        layers |= {name.split(".")[1] for name in names if name.startswith("promptgd.")}
    return layers


def test_every_module_imports_only_the_layers_above_its_own():
    wrong = []
    for path in sorted(ROOT.rglob("*.py")):
        layer = path.relative_to(ROOT).parts[0].removesuffix(".py")
        assert layer in LAYERS, f"{path}: layer {layer!r} is missing from LAYERS (and docs/commands.md's Layout)"
        for imported in imported_layers(path):
            if LAYERS.index(imported) > LAYERS.index(layer):
                wrong.append(f"{path.relative_to(ROOT)} ({layer}) imports {imported}, a layer below it")
    assert not wrong, "\n".join(wrong)
