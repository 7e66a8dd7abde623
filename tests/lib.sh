# Shared by the test scripts that drive the release binary from Python
# (tests/clients/run.sh, tests/console/run.sh). Source it after defining
# `setup_failed MESSAGE` (prints the countable line and exits) and `$work`.

# release_bin WHO REPO: sets $bin to $BLOCKLEDGER_BIN, or builds the release
# binary of REPO (`cargo build --release`) and points at it.
release_bin() {
  local who="$1" repo="$2" target_dir
  if [ -n "${BLOCKLEDGER_BIN:-}" ]; then
    bin="$BLOCKLEDGER_BIN"
  else
    echo "$who: cargo build --release"
    (cd "$repo" && cargo build --release --quiet) || setup_failed "cargo build --release"
    target_dir="$(cd "$repo" && cargo metadata --format-version 1 --no-deps 2>/dev/null \
      | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"
    bin="${target_dir:-$repo/target}/release/blockledger"
  fi
  [ -x "$bin" ] || setup_failed "no executable server binary at $bin"
}

# cached_venv WHO VENV REQUIREMENTS: makes sure VENV has exactly
# REQUIREMENTS installed (wheels only, from PyPI), reusing it while the
# requirements file is unchanged (its sha256 is kept in the venv).
cached_venv() {
  local who="$1" venv="$2" req="$3" stamp want
  stamp="$venv/.blockledger-requirements.sha256"
  want="$(sha256sum "$req" | cut -d' ' -f1)"
  if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "$who: creating virtualenv $venv"
    rm -rf "$venv"
    mkdir -p "$(dirname "$venv")"
    "${PYTHON:-python3}" -m venv "$venv" || setup_failed "python3 -m venv $venv"
    if ! "$venv/bin/pip" install --quiet --disable-pip-version-check --no-input \
         --only-binary=:all: -r "$req" >"$work/pip.log" 2>&1; then
      tail -n 40 "$work/pip.log" >&2
      rm -rf "$venv"
      setup_failed "pip install -r $req"
    fi
    echo "$want" >"$stamp"
  fi
}
