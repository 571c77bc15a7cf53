#!/usr/bin/env bash
# nbgrader is installed for `make student` (its ClearSolutions preprocessor) and the tests, not for
# grading in the students' JupyterLab: switch off its server extensions and JupyterLab menus in this
# environment (they would add grader menus and warn about a missing nbgrader_config.py).
# Usage: tools/hide_grader_extensions.sh [path/to/jupyter]   (default: jupyter on PATH)
set -euo pipefail
jupyter="${1:-jupyter}"
"$jupyter" labextension disable --level=sys_prefix @jupyter/nbgrader >/dev/null 2>&1
for extension in formgrader validate_assignment assignment_list course_list; do
    "$jupyter" server extension disable --sys-prefix "nbgrader.server_extensions.$extension" >/dev/null 2>&1
done
