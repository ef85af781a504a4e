"""The architecture, read from the source (AST; nothing of the package is imported): which
folder may import which, and the size limits that keep every module and function readable in one sitting.

    codec/    never imports training, evaluation, files or the CLI (it codes pictures, not files)
    models/   imports nothing of the package outside models/ (only torch)
    zoo.py    imports only models/ and errors (it reads weights; training writes them)
    files/    imports only the container (codec.fcx, codec.picture), errors and itself
              (imports are found anywhere: inside functions, relative, importlib calls)
    every module    at most 400 lines; every function at most 60 (ALLOWED_LONG_FUNCTIONS aside)
    every package folder    an __init__.py with a docstring saying what the folder is

The last test does import: it checks in a subprocess that the container parser loads no torch.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = "flowcodec_cli"
ROOT = Path(__file__).resolve().parents[1] / "src" / PACKAGE
MODULES = sorted(ROOT.rglob("*.py"))

MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60

# Only Markdown report templates of evaluation/bench/report.py may be listed here, by name, with
# their length: one section of results.md reads best as one function. Empty today: every
# section of report.py is one short function (`markdown` calls `_header`, `_rate_distortion`, …).
REPORT = "evaluation/bench/report.py"
ALLOWED_LONG_FUNCTIONS: dict[tuple[str, str], int] = {}

# What each folder may import of the package, by dotted-name prefix: either everything but
# `forbids`, or nothing but `allows` (the folder's docstrings say the same).
RULES = {
    "codec": {"forbids": ("training", "evaluation", "cli", "files")},
    "models": {"allows": ("models",)},
    "files": {"allows": ("files", "codec.fcx", "codec.picture", "errors")},
}


def rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = [PACKAGE, *path.relative_to(root).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_names(path: Path, root: Path = ROOT) -> set[str]:
    """Every dotted name a module imports, anywhere in it (top level, functions, try blocks):
    `import a.b` (→ a.b), `from a import b` (→ a.b), relative imports resolved against the
    module, and constant arguments of importlib.import_module / __import__."""
    tree = ast.parse(path.read_text("utf-8"), str(path))
    package = module_name(path, root).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package[:len(package) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            names.update(f"{base}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant) \
                and isinstance(node.args[0].value, str):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if called in ("import_module", "__import__"):
                names.add(node.args[0].value)
    return names


def _under(name: str, prefixes) -> bool:
    return any(name == f"{PACKAGE}.{p}" or name.startswith(f"{PACKAGE}.{p}.") for p in prefixes)


def disallowed_imports(path: Path, rule: dict, root: Path = ROOT) -> list[str]:
    """The package names `path` imports against `rule` (see RULES)."""
    ours = [n for n in imported_names(path, root) if n == PACKAGE or n.startswith(PACKAGE + ".")]
    if "forbids" in rule:
        return sorted(n for n in ours if _under(n, rule["forbids"]))
    return sorted(n for n in ours if not _under(n, rule["allows"]))


def functions(path: Path):
    """(qualified name, lines) of every function and method, nested ones included; lines run
    from the `def` (decorators excluded) to the last line of the body, docstring included."""
    tree = ast.parse(path.read_text("utf-8"), str(path))

    def visit(node, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                name = prefix + child.name
                yield name, child.end_lineno - child.lineno + 1
                yield from visit(child, name + ".")
            elif isinstance(child, ast.ClassDef):
                yield from visit(child, prefix + child.name + ".")
            else:
                yield from visit(child, prefix)

    yield from visit(tree, "")


# --- the checker itself catches what it must --------------------------------------------------


def test_import_reader_sees_every_form(tmp_path):
    fake = tmp_path / PACKAGE / "codec" / "fake.py"
    fake.parent.mkdir(parents=True)
    fake.write_text(
        "import flowcodec_cli.training.loop\n"
        "from flowcodec_cli import evaluation\n"
        "from ..training import checkpoints\n"
        "from .. import cli\n"
        "from . import fcx\n"
        "def lazy():\n"
        "    from flowcodec_cli.evaluation.metrics import psnr\n"
        "    import importlib\n"
        "    importlib.import_module('flowcodec_cli.training')\n")
    root = tmp_path / PACKAGE
    names = imported_names(fake, root)
    codec_found = disallowed_imports(fake, RULES["codec"], root)
    files_found = disallowed_imports(fake, RULES["files"], root)
    assert {"flowcodec_cli.training.loop", "flowcodec_cli.evaluation",
            "flowcodec_cli.training.checkpoints", "flowcodec_cli.cli", "flowcodec_cli.codec.fcx",
            "flowcodec_cli.evaluation.metrics.psnr", "flowcodec_cli.training"} <= names
    assert "flowcodec_cli.codec.fcx" not in codec_found + files_found
    assert set(codec_found) == names - {"flowcodec_cli.codec.fcx", "importlib"}
    assert set(files_found) == set(codec_found)


def test_function_reader_measures_nested_functions_and_methods(tmp_path):
    src = tmp_path / "m.py"
    body = "\n".join(f"        x{i} = {i}" for i in range(70))
    src.write_text(f"class A:\n    def method(self):\n        def inner():\n            pass\n{body}\n")
    lengths = dict(functions(src))
    assert lengths == {"A.method": 73, "A.method.inner": 2}


# --- the rules ----------------------------------------------------------------------------------


def test_the_package_is_where_the_tests_look():
    assert {"codec", "models", "training", "evaluation", "files"} <= {
        p.name for p in ROOT.iterdir() if p.is_dir()}
    assert len(MODULES) > 30


@pytest.mark.parametrize("folder", sorted(RULES))
def test_folder_imports_only_what_the_architecture_allows(folder):
    modules = sorted((ROOT / folder).rglob("*.py"))
    assert modules, f"no modules under {folder}/"
    found = {rel(p): disallowed_imports(p, RULES[folder]) for p in modules}
    assert {name: bad for name, bad in found.items() if bad} == {}


def test_the_zoo_only_reads_weights():
    """zoo.py is below codec/ (the codec loads its models through it), so it may import only
    models/ and errors; writing weights (and the atomic writer that needs) is training's."""
    bad = disallowed_imports(ROOT / "zoo.py", {"allows": ("models", "errors")})
    assert bad == []


def test_the_python_api_and_the_plugin_sit_beside_the_command_line():
    """api.py is the command line's twin for Python: it codes through codec/ and files/, never
    through training, evaluation or the CLI. pillow.py is a thin adapter over the API: only the
    API, the container, the picture, the errors and the image files."""
    assert disallowed_imports(ROOT / "api.py",
                              {"forbids": ("training", "evaluation", "cli", "pillow")}) == []
    assert disallowed_imports(ROOT / "pillow.py", {"allows": (
        "api", "codec.fcx", "codec.picture", "errors", "files.images")}) == []


def test_batch_sits_on_the_python_api():
    """batch.py codes trees through the API, the codec and files/, like api.py: never through
    training, evaluation, the CLI or the plug-in; and never Dask, which it drives through the
    client it is given, so that Dask stays an optional extra."""
    assert disallowed_imports(ROOT / "batch.py",
                              {"forbids": ("training", "evaluation", "cli", "pillow")}) == []
    assert not {n for n in imported_names(ROOT / "batch.py") if n.split(".")[0] in (
        "dask", "distributed")}


def test_no_module_is_over_400_lines():
    lengths = {rel(p): len(p.read_text("utf-8").splitlines()) for p in MODULES}
    assert {name: n for name, n in lengths.items() if n > MAX_MODULE_LINES} == {}


def test_no_function_is_over_60_lines():
    too_long = {}
    for path in MODULES:
        for name, lines in functions(path):
            allowed = ALLOWED_LONG_FUNCTIONS.get((rel(path), name), MAX_FUNCTION_LINES)
            if lines > allowed:
                too_long[f"{rel(path)}:{name}"] = lines
    assert too_long == {}


def test_long_function_allowlist_is_small_and_current():
    """Only report templates, each still existing and still over the limit (else drop it)."""
    assert len(ALLOWED_LONG_FUNCTIONS) <= 3
    for (path, name), limit in ALLOWED_LONG_FUNCTIONS.items():
        assert path == REPORT, f"{path}:{name}: only {REPORT}'s Markdown templates may be long"
        actual = dict(functions(ROOT / path)).get(name)
        assert actual is not None, f"{path}:{name} no longer exists"
        assert MAX_FUNCTION_LINES < actual <= limit, f"{path}:{name} is {actual} lines"


def test_every_package_folder_has_an_init_with_a_docstring():
    folders = sorted({p.parent for p in MODULES})
    assert ROOT in folders and len(folders) >= 7
    problems = {}
    for folder in folders:
        init = folder / "__init__.py"
        if not init.is_file():
            problems[rel(folder) if folder != ROOT else "."] = "no __init__.py"
            continue
        doc = ast.get_docstring(ast.parse(init.read_text("utf-8")))
        if not doc or len(doc.split()) < 5:
            problems[rel(init)] = "no docstring saying what the folder is"
    assert problems == {}


def test_the_container_and_the_image_files_load_without_torch():
    """fcx.py: 'Pure Python, no torch: `flowcodec info` and the fuzzers parse headers without
    loading a model'; files/: 'no torch, so the CLI stays instant'."""
    code = ("import sys, flowcodec_cli.codec.fcx, flowcodec_cli.files.images, "
            "flowcodec_cli.files.jobs, flowcodec_cli.files.atomic; print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True)
    assert out.stdout.strip() == "False"


def test_the_package_the_api_and_the_plugin_load_without_torch():
    """`import flowcodec_cli` (every command imports it) loads nothing of the API until a name
    is used (PEP 562); the API, the Pillow plug-in and batch import torch only to code an image
    (and batch never imports Dask)."""
    code = ("import sys, flowcodec_cli; bare = sorted(m for m in ('torch', 'numpy', 'PIL') "
            "if m in sys.modules); import flowcodec_cli.pillow, flowcodec_cli.batch; "
            "flowcodec_cli.encode; print(bare, sorted(m for m in ('torch', 'distributed') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True)
    assert out.stdout.strip() == "[] []"
