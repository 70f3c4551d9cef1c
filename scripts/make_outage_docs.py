"""Regenerate scenarios/outage/*.txt: three station logs long enough that, cut into 4-token chunks,
they need two embedding requests (over 2,048 inputs), so an outage can land between the two."""

from __future__ import annotations

from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "scenarios" / "outage"
STATIONS = {
    "harbour-log.txt": ("harbour", "tide gauge", "barnacles on the sensor window"),
    "river-log.txt": ("river", "flow meter", "silt in the intake screen"),
    "lake-log.txt": ("lake", "ice sensor", "frost on the antenna"),
}


def main() -> None:
    OUT.mkdir(exist_ok=True)
    for name, (place, device, problem) in STATIONS.items():
        lines = [f"Day {d}: the {place} {device} reported reading {d * 7 % 97} and the crew noted {problem}."
                 for d in range(1, 161)]
        (OUT / name).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
