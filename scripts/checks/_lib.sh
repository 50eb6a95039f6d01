# Shared helpers for scripts/checks/*; source it, do not run it.
# shellcheck shell=bash

CHECKS_REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PYTHON="${PYTHON:-python3}"

# Ansible's per-user directory (ANSIBLE_HOME: its temporary files, galaxy cache, default collections
# and roles paths, and where molecule and ansible-lint keep their work) is .state/ansible-home unless
# the caller chose one (.ci/run gives every run a fresh temporary one): no check writes to ~/.ansible
# or finds a collection installed there. README.md, "What the tests write where", lists the rest.
export ANSIBLE_HOME="${ANSIBLE_HOME:-$CHECKS_REPO_ROOT/.state/ansible-home}"
mkdir -p "$ANSIBLE_HOME"

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
# A link or copy left there by another checkout (a moved or copied .state/) is replaced.
CHECKOUT_COLLECTIONS="$CHECKS_REPO_ROOT/.state/collections"
ensure_collection_link() {
  local link="$CHECKOUT_COLLECTIONS/ansible_collections/darklaunch/traefik"
  mkdir -p "$(dirname "$link")"
  if [[ ! -L $link || ! $link -ef $CHECKS_REPO_ROOT ]]; then
    rm -rf "$link"
    ln -sfn "$CHECKS_REPO_ROOT" "$link"
  fi
}

# use_checkout_collection: Ansible resolves darklaunch.traefik from this checkout only. Nothing is
# installed anywhere; a copy in ANSIBLE_HOME's collections (which ansible-lint searches first) is refused.
use_checkout_collection() {
  ensure_collection_link
  export ANSIBLE_COLLECTIONS_PATH="$CHECKOUT_COLLECTIONS"
  local stale="$ANSIBLE_HOME/collections/ansible_collections/darklaunch/traefik"
  if [[ -e $stale && ! $stale -ef $CHECKS_REPO_ROOT ]]; then
    die "$stale is a copy of this collection that would shadow the checkout: remove it"
  fi
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
