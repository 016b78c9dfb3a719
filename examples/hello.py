#!/usr/bin/env conda-execute
# conda execute
# env:
#  - python >=3.8
# run_with: [python]
"""Print where this script runs: a throw-away conda environment made for it."""
import sys

print(f"hello from {sys.prefix}")
print("arguments:", sys.argv[1:])
