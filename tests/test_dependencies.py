"""Dependencies follow imports: what every user installs is what tfaudio/ imports, read from the
source with `ast` (every import counts, including those inside functions)."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+; the project's venv has it

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf8"))

# Import name -> distribution name, where they differ beyond `_` vs `-` (the longest dotted
# prefix wins, so `google.protobuf` can name protobuf while `google` alone names nothing).
DISTRIBUTION = {
    "PIL": "pillow",
    "sklearn": "scikit-learn",
    "yaml": "pyyaml",
    "google.protobuf": "protobuf",
    "umap": "umap-learn",
}

# Needed at run time but never imported by name, so no import can vouch for them.
RUNTIME_ONLY = {
    # transformers 4.x builds its TF models (TFWav2Vec2Model) on tf_keras; our code imports
    # transformers only, and keeps Keras 3 for everything else (wav2vec2.model.keep_keras_3).
    "tf-keras",
    # Starlette parses the app's multipart uploads (tfaudio serve's query files) with it, imported
    # by Starlette itself when a form is read.
    "python-multipart",
}

# Imported by tfaudio/ only behind an optional extra, with a message when it is missing.
OPTIONAL = {"umap-learn": "umap", "apache-beam": "beam"}


def normalize(name: str) -> str:
    """PEP 503 name normalisation: `Scikit_Learn` and `scikit-learn` are one distribution."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
    return normalize(re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement).group(1))


def distribution(import_name: str) -> str:
    """`sklearn.linear_model` -> scikit-learn; `soundfile` -> soundfile."""
    parts = import_name.split(".")
    for end in range(len(parts), 0, -1):
        if ".".join(parts[:end]) in DISTRIBUTION:
            return normalize(DISTRIBUTION[".".join(parts[:end])])
    return normalize(parts[0])


def third_party_imports(folder: Path, local: set[str] = frozenset()) -> dict[str, str]:
    """distribution -> one place that imports it, over every .py file under `folder`; the
    standard library, tfaudio and the names in `local` (modules beside the files) left out."""
    found = {}
    for path in sorted(folder.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf8"), filename=str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top in sys.stdlib_module_names or top in {"__future__", "tfaudio"} | set(local):
                    continue
                if top == "google" and not name.startswith("google."):
                    continue  # `from google import x`: the dotted names below say which package
                found.setdefault(distribution(name), f"{path.relative_to(REPO)}:{node.lineno}")
    return found


def declared(extra: str | None = None) -> set[str]:
    project = PYPROJECT["project"]
    listed = project["dependencies"] if extra is None else project["optional-dependencies"][extra]
    return {requirement_name(requirement) for requirement in listed}


PACKAGE_IMPORTS = third_party_imports(REPO / "tfaudio")


def test_the_walk_sees_known_imports():
    """Guards the comparisons below: function-level and aliased imports are seen and mapped."""
    assert {"tensorflow", "numpy", "scikit-learn", "pillow", "protobuf", "umap-learn"} <= set(PACKAGE_IMPORTS)
    assert distribution("sklearn.metrics") == "scikit-learn" and distribution("tensorflow_hub") == "tensorflow-hub"
    assert requirement_name("Scikit_Learn>=1.5,<2") == "scikit-learn"


def test_core_dependencies_are_what_the_package_imports():
    imported = set(PACKAGE_IMPORTS) - set(OPTIONAL)
    core = declared()
    missing = sorted(imported - core)
    unused = sorted(core - imported - RUNTIME_ONLY)
    problems = [f"  {name}: imported at {PACKAGE_IMPORTS[name]} but not in [project].dependencies" for name in missing]
    problems += [
        f"  {name}: in [project].dependencies but tfaudio/ never imports it: move it to the extra that "
        f"uses it (`dev` for tests and benchmarks), or, if the package needs it at run time without "
        f"importing it, add it to RUNTIME_ONLY in tests/{Path(__file__).name} with a comment saying why"
        for name in unused
    ]
    if problems:
        pytest.fail("pyproject.toml's core dependencies differ from tfaudio/'s imports:\n" + "\n".join(problems),
                    pytrace=False)


def test_runtime_only_allowlist_is_still_needed():
    stale = sorted((RUNTIME_ONLY & set(PACKAGE_IMPORTS)) | (RUNTIME_ONLY - declared()))
    assert not stale, f"{stale}: imported by name now, or no longer a dependency; take them out of RUNTIME_ONLY"


def test_optional_imports_live_in_their_extras_only():
    core = declared()
    for name, extra in OPTIONAL.items():
        assert name in PACKAGE_IMPORTS, f"tfaudio/ no longer imports {name}; drop the `{extra}` extra"
        assert name in declared(extra), f"{name} (imported at {PACKAGE_IMPORTS[name]}) belongs in the `{extra}` extra"
        assert name not in core, f"{name} is optional (the `{extra}` extra): take it out of the core dependencies"


def test_dev_tools_stay_out_of_the_core():
    # Tests, browser checks, memory probes and reference implementations: never a user's install.
    for name in ("pytest", "selenium", "psutil", "librosa"):
        assert name in declared("dev"), f"{name} belongs in the `dev` extra"
        assert name not in declared(), f"{name} is a development tool: move it from the core dependencies to `dev`"


def test_dev_extra_covers_tests_and_benchmarks():
    """`make test` installs `.[dev]`: core + dev must hold everything the tests import; a benchmark
    may also use the `bench` extra (benchmark-only anchors such as perch-hoplite), named in its
    `--help`."""
    local = {path.stem for path in (REPO / "tests").glob("*.py")}
    problems = []
    for folder, extras in (("tests", ("dev",)), ("benchmarks", ("dev", "bench"))):
        available = declared().union(*(declared(extra) for extra in extras))
        for name, place in third_party_imports(REPO / folder, local).items():
            if name not in available:
                problems.append(f"  {name}: imported at {place}; add it to the {' or '.join(extras)} extra")
    assert not problems, "imports that the extras would not install:\n" + "\n".join(problems)


def test_scripts_run_on_a_core_install():
    """The seed's demo scripts use the public API, so a plain `pip install tfaudio` runs them."""
    core = declared()
    needed = {name: place for name, place in third_party_imports(REPO / "scripts").items() if name not in core}
    assert not needed, f"scripts/ imports {needed}, which a core install lacks"
