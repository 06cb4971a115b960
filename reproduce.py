"""Reproduce the MAGE paper (ICLR 2026) table by table: ``python reproduce.py --help``.

Thin on purpose: parsing, planning and running live in harness/ (harness.cli).
"""
import sys

from harness.cli import main

if __name__ == "__main__":
    sys.exit(main())
