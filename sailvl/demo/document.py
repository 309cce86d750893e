"""A tiny report document model rendered to both Markdown and standalone HTML (no extra dependency)."""

from __future__ import annotations

import html
from dataclasses import dataclass, field


@dataclass
class Document:
    """Ordered blocks: ("h", level, text), ("p", text), ("table", header, rows), ("img", path, alt), ("code", text)."""

    title: str
    blocks: list[tuple] = field(default_factory=list)

    def heading(self, text: str, level: int = 2) -> None:
        self.blocks.append(("h", level, text))

    def paragraph(self, text: str) -> None:
        self.blocks.append(("p", text))

    def table(self, header: list[str], rows: list[list]) -> None:
        self.blocks.append(("table", header, [[str(c) for c in row] for row in rows]))

    def image(self, path: str, alt: str) -> None:
        self.blocks.append(("img", path, alt))

    def code(self, text: str) -> None:
        self.blocks.append(("code", text))

    def to_markdown(self) -> str:
        """GitHub-flavoured Markdown; image paths stay relative to the report."""
        out = [f"# {self.title}", ""]
        for block in self.blocks:
            kind = block[0]
            if kind == "h":
                out += [f"{'#' * block[1]} {block[2]}", ""]
            elif kind == "p":
                out += [block[1], ""]
            elif kind == "table":
                header, rows = block[1], block[2]
                out.append("| " + " | ".join(header) + " |")
                out.append("|" + "---|" * len(header))
                out += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
                out.append("")
            elif kind == "img":
                out += [f"![{block[2]}]({block[1]})", ""]
            elif kind == "code":
                out += ["```", block[1].rstrip(), "```", ""]
        return "\n".join(out)

    def to_html(self) -> str:
        """A standalone HTML page with the same content."""
        esc = html.escape
        body = [f"<h1>{esc(self.title)}</h1>"]
        for block in self.blocks:
            kind = block[0]
            if kind == "h":
                body.append(f"<h{block[1]}>{esc(block[2])}</h{block[1]}>")
            elif kind == "p":
                body.append(f"<p>{esc(block[1])}</p>")
            elif kind == "table":
                head = "".join(f"<th>{esc(h)}</th>" for h in block[1])
                rows = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in r) + "</tr>" for r in block[2])
                body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
            elif kind == "img":
                body.append(
                    f'<figure><img src="{esc(block[1])}" alt="{esc(block[2])}"><figcaption>{esc(block[2])}</figcaption></figure>'
                )
            elif kind == "code":
                body.append(f"<pre>{esc(block[1])}</pre>")
        style = (
            "body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;line-height:1.4}"
            "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #bbb;padding:3px 8px;text-align:left}"
            "img{max-width:100%;border:1px solid #ddd}pre{background:#f4f4f4;padding:8px;overflow-x:auto}"
        )
        return (
            f"<!doctype html><html><head><meta charset='utf-8'><title>{esc(self.title)}</title>"
            f"<style>{style}</style></head><body>{''.join(body)}</body></html>\n"
        )
