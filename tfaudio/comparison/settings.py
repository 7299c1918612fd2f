"""`OWNER.NAME=VALUE` overrides as the command line gives them: `--param rf.n_estimators=300`
(a classifier's hyperparameter) and `--fit autoencoder.epochs=5` (a setting of a representation
fitted on each split's training clips) are read the same way here.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

#: An override set as CompareConfig holds it: ((owner, ((name, value), ...)), ...).
Overrides = tuple[tuple[str, tuple[tuple[str, object], ...]], ...]


def parse_overrides(pairs: Sequence[str], owners: Collection[str] | None, what: str, form: str, example: str
                    ) -> dict[str, dict[str, object]]:
    """`["rf.n_estimators=300", "mlp.hidden_layer_sizes=128,64"]` -> {"rf": {...}, "mlp": {...}}.

    owners: the names allowed before the dot (None: any). what ("hyperparameter"), form
    ("CLASSIFIER.PARAM=VALUE") and example ("rf.n_estimators=300") word the ValueError for a pair
    that does not parse. Values
    are read as int, float, a comma-separated int tuple, None/True/False, or kept as text; a
    later pair for the same owner and name wins.
    """
    out: dict[str, dict[str, object]] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        owner, dot, name = key.partition(".")
        if not sep or not dot or not owner or not name or (owners is not None and owner not in owners):
            choices = f" with {form.split('.')[0]} one of {', '.join(owners)}" if owners is not None else ""
            raise ValueError(f"cannot read {what} {pair!r}: write {form}{choices} (e.g. {example})")
        out.setdefault(owner, {})[name] = parse_value(value)
    return out


def as_overrides(parsed: dict[str, dict[str, object]]) -> Overrides:
    """`parse_overrides`' dict as the hashable tuples a frozen config holds."""
    return tuple((owner, tuple(values.items())) for owner, values in parsed.items())


def parse_value(text: str):
    """"none" / "true" / "false" -> None / True / False; "256,128" -> (256, 128); then int,
    float, else the text itself."""
    named = {"none": None, "true": True, "false": False}
    if text.lower() in named:
        return named[text.lower()]
    if "," in text:
        return tuple(int(part) for part in text.split(",") if part)
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text
