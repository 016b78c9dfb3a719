#!/usr/bin/env conda-execute
# conda execute
# env:
#  - jq
# channels:
#  - conda-forge
# No run_with: the .sh extension means bash (the shebang names conda-execute itself).
echo '{"tool": "conda-execute", "works": true}' | jq .works
