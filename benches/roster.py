#!/usr/bin/env python3
"""Writes a subscriber roster CSV for `tidings subscribers import`.

    python3 benches/roster.py --n 100000 --out target/bench-data/roster-100000.csv

Rows are address, name, mode, lists (the columns `subscribers export`
writes): distinct addresses over 100 domains, a name on two rows in three,
every delivery mode, one to three of the shipped lists each. Seeded, so the
same file comes out each time.
"""

import argparse
import csv
import random

LISTS = ["en", "ca", "de", "fr", "it", "pl", "pt", "ru", "gr", "tr", "zh", "nl", "fi", "sv", "ct"]
MODES = ["mime", "plain", "html", "summary", "post", "nomail", ""]
NAMES = ["Ana", "Bo", "Cy", "Dalia", "Émile", "Fatma", "Gosia", "Hiroshi", "Ilse", "Jonas"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    with open(args.out, "w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["address", "name", "mode", "lists"])
        for i in range(args.n):
            address = f"reader{i:06d}@example{i % 100:02d}.org"
            name = "" if i % 3 == 0 else f"{rng.choice(NAMES)} {i}"
            lists = " ".join(rng.sample(LISTS, rng.randint(1, 3)))
            writer.writerow([address, name, rng.choice(MODES), lists])


if __name__ == "__main__":
    main()
