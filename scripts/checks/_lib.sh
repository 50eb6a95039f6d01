# Shared helpers for scripts/checks/*; source it, do not run it.
# shellcheck shell=bash

CHECKS_REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PYTHON="${PYTHON:-python3}"

note() { printf -- '--> %s\n' "$*" >&2; }
die() { printf 'FAILED: %s\n' "$*" >&2; exit 1; }

# The collection's files as the repository has them: tracked plus new untracked files, minus
# everything .gitignore excludes (.state/, caches, tests/output, built tarballs). NUL-separated.
collection_files() {
  if git -C "$CHECKS_REPO_ROOT" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    git -C "$CHECKS_REPO_ROOT" ls-files -z --cached --others --exclude-standard |
      while IFS= read -r -d '' f; do
        if [[ -e $CHECKS_REPO_ROOT/$f || -L $CHECKS_REPO_ROOT/$f ]]; then printf '%s\0' "$f"; fi
      done
  else
    (cd "$CHECKS_REPO_ROOT" && find . \( -name .git -o -name .state -o -name __pycache__ -o -name '.*_cache' \
      -o -path ./tests/output \) -prune -o \( -type f -o -type l \) -print0 | sed -z 's|^\./||')
  fi
}

# copy_collection DIR: DIR/ansible_collections/darklaunch/traefik becomes a clean copy; prints that path.
copy_collection() {
  local dest="$1/ansible_collections/darklaunch/traefik"
  mkdir -p "$dest"
  collection_files | (cd "$CHECKS_REPO_ROOT" && tar --null -T - -cf -) | tar -xf - -C "$dest"
  printf '%s\n' "$dest"
}

# ensure_collection_link: .state/collections/ansible_collections/darklaunch/traefik -> the repository
# (what tests/conftest.py does), so mypy and ansible-doc resolve the collection from the checkout.
ensure_collection_link() {
  local link="$CHECKS_REPO_ROOT/.state/collections/ansible_collections/darklaunch/traefik"
  mkdir -p "$(dirname "$link")"
  [[ -e $link ]] || ln -sfn "$CHECKS_REPO_ROOT" "$link"
}

# tool_venv NAME REQUIREMENTS_FILE: a virtualenv under .state/venvs/NAME with exactly those pins,
# (re)installed only when the requirements file changed. Prints the venv path.
tool_venv() {
  local name="$1" reqs="$2" venv="$CHECKS_REPO_ROOT/.state/venvs/$1"
  local stamp="$venv/.requirements.sha256" want
  want="$(sha256sum "$reqs" | cut -d' ' -f1)"
  if [[ ! -x $venv/bin/python || ! -f $stamp || "$(cat "$stamp")" != "$want" ]]; then
    note "creating virtualenv .state/venvs/$name from ${reqs#"$CHECKS_REPO_ROOT"/}"
    rm -rf "$venv"
    "$PYTHON" -m venv "$venv"
    "$venv/bin/python" -m pip install --disable-pip-version-check -q -r "$reqs"
    printf '%s\n' "$want" >"$stamp"
  fi
  printf '%s\n' "$venv"
}
