"""Documents the tests make: PDFs with known text on each page."""

from __future__ import annotations

import io

import pypdf

__all__ = ["REPORT_PAGES", "encrypted", "pdf_bytes"]

REPORT_PAGES = [
    ["Quarterly report", "Apples sold well"],
    ["Second page about bananas"],
    ["Third page mentions cherries"],
    ["Fourth page lists dates", "and elderberries"],
]
"""Four pages of a report, each with words to find in the extracted text."""


def pdf_bytes(pages: list[list[str]]) -> bytes:
    """A minimal PDF: one page per item, each line of text shown in Helvetica; a page without lines
    gets a filled square and no text (as a scanned page has no text layer)."""

    def literal(line: str) -> str:
        return "(" + line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)") + ")"

    kids = " ".join(f"{4 + 2 * i} 0 R" for i in range(len(pages)))
    objects: dict[int, bytes] = {
        1: b"<< /Type /Catalog /Pages 2 0 R >>",
        2: f"<< /Type /Pages /Kids [{kids}] /Count {len(pages)} >>".encode(),
        3: b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
    }
    for i, lines in enumerate(pages):
        if lines:
            content = "BT /F1 12 Tf 14 TL 72 720 Td " + " ".join(f"{literal(line)} Tj T*" for line in lines) + " ET"
        else:
            content = "0 0 1 rg 72 72 200 200 re f"
        stream = content.encode("cp1252")
        objects[4 + 2 * i] = (f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
                              f"/Resources << /Font << /F1 3 0 R >> >> /Contents {5 + 2 * i} 0 R >>").encode()
        objects[5 + 2 * i] = f"<< /Length {len(stream)} >>\nstream\n".encode() + stream + b"\nendstream"
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets: dict[int, int] = {}
    for number in sorted(objects):
        offsets[number] = len(out)
        out += f"{number} 0 obj\n".encode() + objects[number] + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{offsets[number]:010d} 00000 n \n".encode() for number in sorted(objects))
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


def encrypted(data: bytes, user_password: str) -> bytes:
    """The PDF `data` encrypted (AES-128); an empty user password opens it, protecting only against editing."""
    writer = pypdf.PdfWriter(clone_from=pypdf.PdfReader(io.BytesIO(data)))
    writer.encrypt(user_password=user_password, owner_password="owner-secret", algorithm="AES-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()
