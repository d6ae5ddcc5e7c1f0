"""Documents the knowledge tests make: Word files (and ZIP bombs), PDFs with titles or blank pages,
HTML, Markdown, CSV, Italian text in several encodings and files that only pretend to be text."""

from __future__ import annotations

import io
import os
import zipfile
from html import escape
from pathlib import Path

import pypdf

from tests.documentfiles import pdf_bytes

__all__ = ["ITALIAN", "MARKDOWN", "PAGE_HTML", "document_xml", "docx_bomb", "docx_bytes", "docx_with", "pdf_with_title",
           "sparse_file"]

_W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
_CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/word/document.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>'
)
_RELS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/'
    'officeDocument" Target="word/document.xml"/></Relationships>'
)

Item = tuple[str, str] | list[list[str]]
"""A Word body item: (style, text) for a paragraph ("" for plain, "list" for a list item, a style id such
as "Heading1" or "Titolo2"), or the rows of a table."""


def _paragraph(style: str, text: str) -> str:
    properties = ""
    if style == "list":
        properties = '<w:pPr><w:numPr><w:ilvl w:val="0"/><w:numId w:val="1"/></w:numPr></w:pPr>'
    elif style:
        properties = f'<w:pPr><w:pStyle w:val="{style}"/></w:pPr>'
    runs = "<w:r><w:br/></w:r>".join(f'<w:r><w:t xml:space="preserve">{escape(line)}</w:t></w:r>'
                                      for line in text.split("\n"))
    return f"<w:p>{properties}{runs}</w:p>"


def _table(rows: list[list[str]]) -> str:
    cells = "".join("<w:tr>" + "".join(f"<w:tc>{_paragraph('', cell)}</w:tc>" for cell in row) + "</w:tr>"
                    for row in rows)
    return f"<w:tbl><w:tblPr/>{cells}</w:tbl>"


def document_xml(items: list[Item]) -> str:
    body = "".join(_table(item) if isinstance(item, list) else _paragraph(*item) for item in items)
    return (f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><w:document xmlns:w="{_W}">'
            f"<w:body>{body}<w:sectPr/></w:body></w:document>")


def _styles_xml(localised: dict[str, str]) -> str:
    """Styles whose ids are in another language ("Titolo1") and whose built-in names say what they are."""
    styles = "".join(f'<w:style w:type="paragraph" w:styleId="{style_id}"><w:name w:val="{name}"/></w:style>'
                     for style_id, name in localised.items())
    return f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><w:styles xmlns:w="{_W}">{styles}</w:styles>'


def docx_with(members: dict[str, bytes | str], *, compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    """A ZIP archive holding exactly `members`."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=compression) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return out.getvalue()


def docx_bytes(items: list[Item], *, title: str | None = None, styles: dict[str, str] | None = None) -> bytes:
    """A minimal Word document: content types, relationships, the document, and a title and styles if given."""
    members: dict[str, bytes | str] = {"[Content_Types].xml": _CONTENT_TYPES, "_rels/.rels": _RELS,
                                       "word/document.xml": document_xml(items)}
    if title is not None:
        members["docProps/core.xml"] = (
            '<?xml version="1.0" encoding="UTF-8" standalone="yes"?><cp:coreProperties '
            'xmlns:cp="http://schemas.openxmlformats.org/package/2006/metadata/core-properties" '
            f'xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title>{escape(title)}</dc:title></cp:coreProperties>')
    if styles is not None:
        members["word/styles.xml"] = _styles_xml(styles)
    return docx_with(members)


def docx_bomb(megabytes: int) -> bytes:
    """A .docx whose document part is `megabytes` MB of zeros: a few kilobytes packed."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr("[Content_Types].xml", _CONTENT_TYPES)
        archive.writestr("_rels/.rels", _RELS)
        with archive.open("word/document.xml", "w", force_zip64=True) as member:
            chunk = b"\0" * (1024 * 1024)
            for _ in range(megabytes):
                member.write(chunk)
    return out.getvalue()


def pdf_with_title(pages: list[list[str]], title: str) -> bytes:
    writer = pypdf.PdfWriter(clone_from=pypdf.PdfReader(io.BytesIO(pdf_bytes(pages))))
    writer.add_metadata({"/Title": title})
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def sparse_file(path: Path, size: int) -> Path:
    """A file of `size` bytes that takes no room on disk (a hole)."""
    with path.open("wb") as file:
        file.truncate(size)
    assert os.path.getsize(path) == size
    return path


PAGE_HTML = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Fruit &amp; prices</title>
<style>body { color: red }</style><script>var hidden = "script text";</script></head>
<body>
<nav><a href="/">Home navigation link</a></nav>
<h1>Fruit guide</h1>
<p>Apples are   crisp
and sweet.</p>
<h2>Prices</h2>
<ul><li>Apples: one euro</li><li>Pears: two euros</li></ul>
<table><tr><th>Fruit</th><th>Price</th></tr><tr><td>Apple</td><td>1 &euro;</td></tr>
<tr><td>Pear</td><td>2 &euro;</td></tr></table>
<pre>def price(fruit):
    return PRICES[fruit]</pre>
<blockquote>An apple a day.</blockquote>
</body></html>
"""

MARKDOWN = """---
title: Front matter title
layout: post
---
# Handbook

Introduction paragraph
on two lines.

## Prices

Some words about prices.

| Fruit | Price |
|-------|------:|
| Apple | 1 |
| Pear  | 2 \\| 3 |

```python
def price(fruit):

    return PRICES[fruit]
```

Setext heading
--------------

Under the setext heading.

### Deep section ###

Deep words.

***

Last paragraph.
"""

ITALIAN = ("Però è già più caro: perché costa 10 € al chilo.\n\n"
           "L'università è lontana, però la città è bella.\n")
"""Italian text with accented letters and the euro sign (all in Windows-1252)."""
