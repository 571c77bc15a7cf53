#!/usr/bin/env bash
# nbgrader is installed for `make student` (its ClearSolutions preprocessor) and the tests, not for
# grading in the students' JupyterLab: switch off its server extensions and JupyterLab menus in this
# environment (they would add grader menus and warn about a missing nbgrader_config.py).
# Usage: tools/hide_grader_extensions.sh [path/to/jupyter]   (default: jupyter on PATH)
set -euo pipefail
jupyter="${1:-jupyter}"

quietly() {  # run a jupyter command without its progress chatter; on failure show it and stop
    local output
    output=$("$@" 2>&1) || { echo "could not run: $*" >&2; echo "$output" >&2; exit 1; }
}

quietly "$jupyter" labextension disable --level=sys_prefix @jupyter/nbgrader
for extension in formgrader validate_assignment assignment_list course_list; do
    quietly "$jupyter" server extension disable --sys-prefix "nbgrader.server_extensions.$extension"
done
