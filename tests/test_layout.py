"""The house plan, checked from the source with `ast` (nothing here imports tfaudio): no import
cycles, TensorFlow-free model configurations, lower layers never importing higher ones, and no
module over 500 lines.

Every import statement counts, wherever it is: at the top, inside a function (a lazy import
still runs, just later) and under `if TYPE_CHECKING:`. Only `importlib.import_module` calls
with computed names are invisible to this walk; the root package's lazy public names
(`tfaudio.compare`, `tfaudio.visualize`) are such, on purpose, so `import tfaudio` stays light.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "tfaudio"
ROOT = PACKAGE.name
MAX_LINES = 500
#: A function longer than this says why in a comment starting with LONG_REASON.
MAX_FUNCTION_LINES = 80
LONG_REASON = "# Long on purpose:"

# Layers, lowest first: a module may import its own package, anything in a lower layer, and,
# within the foundation only, its neighbours (cycles are caught separately). The foundation is
# what every layer may need: errors, the tfaudio home and downloads (assets), and process
# settings (quiet: TensorFlow's start-up; runtime: numeric precision). Packages that share a
# layer above it do not import each other:
#   * data (decoding, datasets, splits) and frontend (tf.signal features) are independent;
#   * pipeline (embed_dataset: representation + store -> vectors) is the one way clips become
#     vectors, and comparison and viz both embed through it, so it sits below them rather than
#     beside them (training does not embed: it builds its own tf.data inputs);
#   * comparison, training and viz are three uses of the layers below and know nothing of each
#     other: what two of them share belongs further down.
LAYERS: tuple[tuple[str, frozenset[str]], ...] = (
    ("foundation", frozenset({ROOT, f"{ROOT}.errors", f"{ROOT}.assets", f"{ROOT}.quiet", f"{ROOT}.runtime",
                              f"{ROOT}.outputs"})),
    ("inputs", frozenset({f"{ROOT}.data", f"{ROOT}.frontend"})),
    ("models", frozenset({f"{ROOT}.models"})),
    ("store", frozenset({f"{ROOT}.store"})),
    ("pipeline", frozenset({f"{ROOT}.pipeline"})),
    ("search", frozenset({f"{ROOT}.search"})),
    ("labels", frozenset({f"{ROOT}.labels"})),
    ("uses", frozenset({f"{ROOT}.comparison", f"{ROOT}.training", f"{ROOT}.viz"})),
    # Above compare and train: a detector reports with compare's statistics and exports with
    # train's SavedModel machinery rather than repeating them.
    ("detector", frozenset({f"{ROOT}.detector"})),
    ("app", frozenset({f"{ROOT}.app"})),
    ("cli", frozenset({f"{ROOT}.cli"})),
)
SIDEWAYS_ALLOWED = {"foundation"}

# What a model's config.py must never reach: a configuration is read to name a cache key or
# to validate a command line, and must not cost a TensorFlow import (~3 s).
HEAVY = {"tensorflow", "keras", "tf_keras", "transformers", "tensorflow_hub"}


@dataclass(frozen=True)
class Edge:
    """`source` imports `target` at `line` of `source`'s file."""

    source: str
    target: str
    line: int


def module_files() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package (packages by __init__.py)."""
    modules = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


MODULES = module_files()


def relative_base(module: str, node: ast.ImportFrom) -> str:
    """The absolute module a (possibly relative) `from ... import` reads from."""
    if not node.level:
        return node.module or ""
    package = module.split(".") if MODULES[module].name == "__init__.py" else module.split(".")[:-1]
    package = package[: len(package) - (node.level - 1)]
    return ".".join(package + ([node.module] if node.module else []))


def imported_names(module: str) -> list[tuple[str, int]]:
    """(dotted name as written, line) of every import in `module`'s file, wherever it is; for
    `from a import b` both `a` and `a.b` (b may be a submodule or a name)."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf8"), filename=str(MODULES[module]))
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = relative_base(module, node)
            names.append((base, node.lineno))
            names += [(f"{base}.{alias.name}", node.lineno) for alias in node.names if alias.name != "*"]
    return sorted(names, key=lambda item: item[1])


def ancestors(name: str) -> list[str]:
    """`a.b.c` -> [`a`, `a.b`]: the packages Python runs before the module itself."""
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def resolve(name: str) -> str | None:
    """The package module an imported name lands in (the longest known prefix), else None."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def build_graph() -> tuple[dict[str, list[Edge]], dict[str, dict[str, int]]]:
    """(module -> its edges to other package modules, module -> {third-party top-level: line}).

    An edge is kept for the module a name resolves to and for the packages above it that the
    import runs too (`from tfaudio.viz.points import x` runs `tfaudio/viz/__init__.py`), except
    the importer's own packages, which are already running when it does.
    """
    edges: dict[str, list[Edge]] = {module: [] for module in MODULES}
    external: dict[str, dict[str, int]] = {module: {} for module in MODULES}
    for module in MODULES:
        seen = set()
        for name, line in imported_names(module):
            target = resolve(name)
            if target is None:
                if name.split(".")[0] != ROOT and name != "__future__":
                    external[module].setdefault(name.split(".")[0], line)
                continue
            for reached in [*ancestors(target), target]:
                if reached == module or reached in ancestors(module) or reached in seen:
                    continue
                seen.add(reached)
                edges[module].append(Edge(module, reached, line))
    return edges, external


EDGES, EXTERNAL = build_graph()


def where(edge: Edge) -> str:
    return f"{MODULES[edge.source].relative_to(PACKAGE.parent)}:{edge.line}"


def group(module: str) -> str:
    """`tfaudio.models.yamnet.config` -> `tfaudio.models`; the root package is its own group."""
    return ".".join(module.split(".")[:2])


def layer_of(module: str) -> int | None:
    for index, (_, groups) in enumerate(LAYERS):
        if group(module) in groups:
            return index
    return None


def strongly_connected(edges: dict[str, list[Edge]]) -> list[list[str]]:
    """Tarjan's components of more than one module (iterative: no recursion limit)."""
    index, low, on_stack, stack, found, counter = {}, {}, set(), [], [], 0
    for start in edges:
        if start in index:
            continue
        work = [(start, iter(edges[start]))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            for edge in children:
                child = edge.target
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(edges[child])))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return found


def one_cycle(component: list[str], edges: dict[str, list[Edge]]) -> list[Edge]:
    """A shortest cycle through the component's first module, as its edges (breadth first)."""
    members, start = set(component), component[0]
    previous: dict[str, Edge] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for edge in edges[node]:
                if edge.target not in members:
                    continue
                if edge.target == start:
                    path = [edge]
                    while path[0].source != start:
                        path.insert(0, previous[path[0].source])
                    return path
                if edge.target not in previous:
                    previous[edge.target] = edge
                    following.append(edge.target)
        frontier = following
    raise AssertionError(f"no cycle found in component {component}")


def reachable(start: str) -> dict[str, list[Edge]]:
    """Every package module `start` runs, directly or not -> the chain of imports that gets there."""
    chains = {start: []}
    frontier = [start]
    while frontier:
        node = frontier.pop()
        for edge in EDGES[node]:
            if edge.target not in chains:
                chains[edge.target] = [*chains[node], edge]
                frontier.append(edge.target)
    return chains


def fail_if(problems: list[str], what: str, fix: str) -> None:
    """Fail listing every problem, with what to do about them (no assertion-rewrite noise)."""
    if problems:
        pytest.fail(f"{what}:\n" + "\n".join(problems) + f"\n{fix}", pytrace=False)


# ----------------------------------------------------------------------------------------------


def test_the_walk_sees_the_package():
    """Guards the tests below: the walk finds the modules and the imports it should."""
    assert {ROOT, f"{ROOT}.cli.main", f"{ROOT}.models.base", f"{ROOT}.models.yamnet.config"} <= set(MODULES)
    assert f"{ROOT}.quiet" in {edge.target for edge in EDGES[f"{ROOT}.models.base"]}
    assert "numpy" in EXTERNAL[f"{ROOT}.models.base"]
    # A function-level import counts: quiet imports TensorFlow only inside its function.
    assert "tensorflow" in EXTERNAL[f"{ROOT}.quiet"]
    # Importing a submodule runs the packages above it: cli.viz reaches the viz package's __init__.
    assert f"{ROOT}.viz" in {edge.target for edge in EDGES[f"{ROOT}.cli.viz"]}
    assert sum(len(found) for found in EDGES.values()) > 100


def test_no_import_cycles():
    cycles = []
    for component in strongly_connected(EDGES):
        path = one_cycle(component, EDGES)
        steps = "".join(f"\n      {where(edge)}: {edge.source} imports {edge.target}" for edge in path)
        cycles.append(f"  {' -> '.join([*(edge.source for edge in path), path[0].source])}{steps}")
    fail_if(
        cycles,
        "import cycles (imports inside functions count: they run too)",
        "Break each by moving what both sides need into a lower module (a leaf such as a config or "
        "result module), or by passing it in as an argument instead of importing it.",
    )


def test_every_module_is_in_a_layer():
    unplaced = sorted({group(module) for module in MODULES if layer_of(module) is None})
    fail_if(
        [f"  {name}" for name in unplaced],
        "packages and modules in no layer",
        f"Add each to LAYERS in tests/{Path(__file__).name}, above everything it imports and below "
        "everything that imports it.",
    )


def test_lower_layers_never_import_higher_ones():
    problems = {}
    for module, found in EDGES.items():
        for edge in found:
            source, target = layer_of(module), layer_of(edge.target)
            if source is None or target is None or group(module) == group(edge.target):
                continue
            # One line per import statement and package (not again for the package's __init__).
            key = (module, edge.line, group(edge.target))
            if target > source:
                problems.setdefault(key, (
                    f"  {where(edge)}: {module} ({LAYERS[source][0]} layer) imports {edge.target} "
                    f"({LAYERS[target][0]} layer, higher)"
                ))
            elif target == source and LAYERS[source][0] not in SIDEWAYS_ALLOWED:
                problems.setdefault(key, (
                    f"  {where(edge)}: {module} imports {edge.target}, its neighbour in the "
                    f"{LAYERS[source][0]} layer"
                ))
    order = " < ".join("{" + ", ".join(sorted(groups)) + "}" for _, groups in LAYERS)
    fail_if(
        list(problems.values()),
        f"imports against the layering {order}",
        "Move what the lower module needs down to its layer (or into a leaf both can import), or let "
        "the higher layer pass it in; never import upwards, even inside a function.",
    )


def test_model_configs_never_reach_tensorflow():
    configs = sorted(m for m in MODULES if m.startswith(f"{ROOT}.models.") and m.endswith(".config"))
    assert len(configs) >= 5, configs  # handcrafted, yamnet, vggish, wav2vec2, autoencoder
    problems = []
    for config in configs:
        for module, chain in reachable(config).items():
            for heavy in sorted(HEAVY & set(EXTERNAL[module])):
                route = "".join(f"\n      {where(edge)}: imports {edge.target}" for edge in chain)
                problems.append(
                    f"  {config} reaches {heavy} in {MODULES[module].relative_to(PACKAGE.parent)}:"
                    f"{EXTERNAL[module][heavy]}{route}"
                )
    fail_if(
        problems,
        "model configurations must never import TensorFlow, Keras, transformers or tensorflow_hub, "
        "not even through tfaudio modules or inside functions",
        "Keep config.py to dataclasses and plain Python: move the TensorFlow code to the model's "
        "model.py, or move the plain code the config needs out of the heavy module into one it can import.",
    )


def test_no_module_over_500_lines():
    problems = []
    for path in MODULES.values():
        count = len(path.read_text(encoding="utf8").splitlines())
        if count > MAX_LINES:
            problems.append(f"  {path.relative_to(PACKAGE.parent)}: {count} lines")
    fail_if(
        problems,
        f"modules over {MAX_LINES} lines",
        "Split each along its concepts (one concept per module), e.g. move a class and its helpers "
        "into a module of its own.",
    )


def test_tensorflow_and_keras_come_through_the_quiet_import():
    """`import tensorflow` / `import keras` anywhere but tfaudio.quiet would print TensorFlow's
    start-up noise whenever that module happens to be the first to load it (the Python API's
    first embedding, a notebook cell); `from tfaudio.quiet import tf, keras` never does."""
    problems = [
        f"  {MODULES[module].relative_to(PACKAGE.parent)}:{line} imports {name}"
        for module in MODULES if module != f"{ROOT}.quiet"
        for name, line in imported_names(module) if name in ("tensorflow", "keras")
    ]
    fail_if(problems, "modules importing TensorFlow or Keras directly",
            "Write `from tfaudio.quiet import tf` (or `keras`) instead.")


def test_long_functions_say_why():
    """A function over MAX_FUNCTION_LINES lines is split by phase, or its body says why it is not."""
    problems = []
    for path in MODULES.values():
        source = path.read_text(encoding="utf8")
        lines = source.splitlines()
        for node in ast.walk(ast.parse(source)):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            length = node.end_lineno - node.lineno + 1
            body = lines[node.lineno - 1:node.end_lineno]
            if length > MAX_FUNCTION_LINES and not any(line.strip().startswith(LONG_REASON) for line in body):
                problems.append(f"  {path.relative_to(PACKAGE.parent)}:{node.lineno} {node.name}: {length} lines")
    fail_if(
        problems,
        f"functions over {MAX_FUNCTION_LINES} lines with no `{LONG_REASON}` comment",
        "Split each by phase into functions that do one job, or say in that comment why it must stay whole.",
    )


def test_layer_table_names_real_packages():
    known = {group(module) for module in MODULES}
    stale = sorted(name for _, groups in LAYERS for name in groups if name not in known)
    fail_if(
        [f"  {name}" for name in stale],
        f"LAYERS in tests/{Path(__file__).name} names packages that do not exist",
        "Remove or rename them to match the package.",
    )
