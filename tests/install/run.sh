#!/usr/bin/env bash
# make test-install: every tests/install/test_*.sh, each installing one artifact the way a user
# outside this repository would (its own temp dir outside the repo, HOME pointing into it) and
# running register -> list -> watch event -> unregister through it. Run from the repository root
# after `make lib` and `make dist`; $PEER_REGISTRY_CLI may name an already built peer-registry
# for `make install` (test-install passes test-cli's debug build). Exits non-zero if any failed.
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"

passed=()
failed=()
for test in "$here"/test_*.sh; do
    name="$(basename "$test" .sh)"
    echo "==== tests/install/$name.sh"
    started=$SECONDS
    if bash "$test"; then
        passed+=("$name ($((SECONDS - started)) s)")
    else
        failed+=("$name (exit $?, $((SECONDS - started)) s)")
    fi
done

echo
echo "==== tests/install summary: ${#passed[@]} passed, ${#failed[@]} failed"
for p in "${passed[@]}"; do echo "  ok    $p"; done
for f in "${failed[@]}"; do echo "  FAIL  $f"; done
[ ${#failed[@]} -eq 0 ] && [ ${#passed[@]} -gt 0 ]
