"""Writes scenarios/quickstart/field-guide.pdf: a small three-page text PDF written by us.

A hand-built PDF (Helvetica, one content stream per page) so the quickstart needs no PDF
generator dependency. Run from the repository root: python scripts/make_quickstart_pdf.py
"""

from __future__ import annotations

from pathlib import Path

PAGES = [
    [
        "Lighthouse Field Guide - Page 1: Installing the sensor",
        "Mount the Lighthouse tide sensor on a pier post at least two metres above",
        "the highest recorded spring tide. Use the stainless steel bracket and the",
        "four M8 bolts from the box. The sensor reports water level every minute",
        "over LoRaWAN to the harbour gateway. Before you leave the site, press the",
        "blue test button once: the status lamp blinks green three times when the",
        "gateway has acknowledged the first reading.",
    ],
    [
        "Lighthouse Field Guide - Page 2: Calibration",
        "Calibrate against the harbour datum after installation. Measure the distance",
        "from the sensor face to the chart datum mark with the survey tape, then enter",
        "it in the console under Sites > Calibration offset. A wrong offset shifts every",
        "reading by the same amount, so tidal curves look right but alarms fire too",
        "early or too late. Recalibrate after storms that move the pier post.",
    ],
    [
        "Lighthouse Field Guide - Page 3: Alarms and maintenance",
        "Flood alarms trigger when the water level stays above the threshold for three",
        "consecutive readings. Replace the lithium battery pack every eighteen months;",
        "the console warns thirty days ahead. Clean barnacles off the sensor window",
        "with a soft brush and fresh water only, never with solvents, which cloud the",
        "acoustic window and make readings drift upwards.",
    ],
]


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def build(pages: list[list[str]]) -> bytes:
    objects: list[bytes] = []
    n = len(pages)
    kids = " ".join(f"{4 + 2 * i} 0 R" for i in range(n))
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {n} >>".encode())
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>")
    for i, lines in enumerate(pages):
        ops = ["BT", "/F1 11 Tf", "14 TL", "72 760 Td"]
        for line in lines:
            ops += [f"({_escape(line)}) Tj", "T*"]
        ops.append("ET")
        stream = "\n".join(ops).encode("latin-1")
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            f"/Resources << /Font << /F1 3 0 R >> >> /Contents {5 + 2 * i} 0 R >>".encode()
        )
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % off for off in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


if __name__ == "__main__":
    target = Path(__file__).resolve().parents[1] / "scenarios" / "quickstart" / "field-guide.pdf"
    target.write_bytes(build(PAGES))
    print(f"wrote {target}")
