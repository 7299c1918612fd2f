"""What a label store holds, in numbers: `LabelStore.summary()`, printed by `tfaudio labels info`."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Summary:
    """What a store holds: counts per label (per kind, in the order of `kinds`), per annotator,
    per source; how many files, and of those how many have no content hash."""

    path: str
    schema: int
    annotations: int
    files: int
    unhashed_files: int
    by_label: dict
    annotators: dict
    sources: dict
    kinds: tuple[str, ...]

    def text(self) -> str:
        lines = [f"{self.path}: {self.annotations} annotations of {self.files} files (label schema {self.schema})"]
        if self.unhashed_files:
            lines.append(f"{self.unhashed_files} files were not found when labelled (no content hash)")
        if self.by_label:
            width = max(len(label) for label in self.by_label)
            lines.append(f"{'label':<{width}}  " + "  ".join(f"{kind:>8}" for kind in self.kinds))
            for label, kinds in sorted(self.by_label.items()):
                lines.append(f"{label:<{width}}  " + "  ".join(f"{kinds[kind]:>8}" for kind in self.kinds))
        for title, counts in (("annotators", self.annotators), ("sources", self.sources)):
            if counts:
                named = (f"{name or '(unnamed)'} {n}" for name, n in sorted(counts.items()))
                lines.append(f"{title}: " + ", ".join(named))
        return "\n".join(lines)

    def html(self) -> str:
        import html

        return f"<pre>{html.escape(self.text())}</pre>"
