"""A deterministic synthetic ``home_rentals`` table, shaped like MindsDB's tutorial data.

Prices follow rooms, floor area and location (plus noise), so a classifier that predicts
``number_of_rooms`` from ``initial_price`` and ``rental_price`` does clearly better than chance,
and the priciest rows are above 5300 (the JOIN example filters on ``rental_price > 5300``).
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
from contextlib import closing
from pathlib import Path

import numpy as np
import pandas as pd

COLUMNS = [
    "number_of_rooms",
    "number_of_bathrooms",
    "sqft",
    "location",
    "days_on_market",
    "initial_price",
    "neighborhood",
    "rental_price",
]
LOCATIONS = ["poor", "good", "great"]
NEIGHBORHOODS = [
    "alcatraz_ave",
    "berkeley_hills",
    "downtown",
    "south_side",
    "thowsand_oaks",
    "westbrae",
]
# Monthly premium of each location over 'poor'.
_LOCATION_PREMIUM = {"poor": 0, "good": 450, "great": 900}


def generate(n: int = 500, seed: int = 0) -> pd.DataFrame:
    """``n`` rows of the home_rentals table; the same ``seed`` always gives the same rows."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    rng = np.random.default_rng(seed)
    rooms = rng.integers(0, 5, size=n)  # 0 = studio
    bathrooms = np.clip(1 + rooms // 2 + rng.integers(-1, 2, size=n), 1, 3)
    sqft = (350 + 320 * rooms + rng.normal(0, 60, size=n)).round().astype(int)
    location = rng.choice(LOCATIONS, size=n, p=[0.3, 0.45, 0.25])
    premium = np.array([_LOCATION_PREMIUM[loc] for loc in location])
    rental = 900 + 650 * rooms + 0.8 * sqft + premium + rng.normal(0, 120, size=n)
    rental_price = rental.round().astype(int)
    # The asking price starts a little above or below what the flat finally rents for.
    initial_price = (rental_price * rng.uniform(0.93, 1.12, size=n)).round().astype(int)
    days_on_market = rng.integers(1, 60, size=n)
    neighborhood = rng.choice(NEIGHBORHOODS, size=n)
    frame = pd.DataFrame(
        {
            "number_of_rooms": rooms.astype(int),
            "number_of_bathrooms": bathrooms.astype(int),
            "sqft": sqft,
            "location": location.astype(object),
            "days_on_market": days_on_market.astype(int),
            "initial_price": initial_price,
            "neighborhood": neighborhood.astype(object),
            "rental_price": rental_price,
        },
        columns=COLUMNS,
    )
    # Plain Python-friendly dtypes: int64 numbers and object strings, whatever pandas defaults.
    for col in ("location", "neighborhood"):
        frame[col] = frame[col].astype(object)
    return frame


def write_sqlite(path: Path, n: int = 500, seed: int = 0) -> Path:
    """Write the table as ``home_rentals`` into the SQLite file ``path`` (replacing it)."""
    path = Path(path).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    with closing(sqlite3.connect(path)) as conn, conn:
        generate(n, seed).to_sql("home_rentals", conn, index=False, if_exists="replace")
    return path


def main(argv: list[str] | None = None) -> int:
    """Print the table as CSV, or write it into a SQLite file with ``--sqlite PATH``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=500, help="number of rows")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--sqlite",
        type=Path,
        help="write a home_rentals table into this SQLite file instead of printing CSV, e.g. "
        "~/.byom/local/test_data.sqlite (the embedded datasource's test_data schema)",
    )
    args = parser.parse_args(argv)
    if args.sqlite:
        path = write_sqlite(args.sqlite, args.n, args.seed)
        print(f"wrote {args.n} rows to {path} (table home_rentals)")
    else:
        generate(args.n, args.seed).to_csv(sys.stdout, index=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
