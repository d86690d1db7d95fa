#!/bin/sh
# Prints the path of a Python 3.12+ interpreter, or fails with a one-line message. The Makefile
# builds .venv with it (the gateway and all its checks need 3.12+; helm-sdkpy, which renders the
# chart in tests/deploy, has that floor too). Tries python3.13, python3.12 and python3 on PATH,
# then the versions pyenv has installed (whose shims refuse to run unless that version is enabled).
#   PY=$(sh deploy/python312.sh) && "$PY" -m venv .venv
ok() {
    "$1" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' >/dev/null 2>&1
}
for candidate in python3.13 python3.12 python3; do
    path=$(command -v "$candidate" 2>/dev/null) || continue
    if ok "$path"; then
        "$path" -c 'import sys; print(sys.executable)'
        exit 0
    fi
done
if command -v pyenv >/dev/null 2>&1; then
    root=$(pyenv root)
    for version in $(pyenv versions --bare 2>/dev/null | grep -E '^3\.(1[2-9])(\.[0-9]+)?$' | sort -t. -k2,2nr -k3,3nr); do
        for exe in "$root/versions/$version/bin/python3" "$root/versions/$version/bin/python"; do
            if [ -x "$exe" ] && ok "$exe"; then
                echo "$exe"
                exit 0
            fi
        done
    done
fi
echo "no Python 3.12 or newer found (tried python3.13, python3.12, python3, pyenv): install python3.12 or python3.13 with its venv module, or run make PYTHON=/path/to/python3.12" >&2
exit 1
