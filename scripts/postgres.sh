# Sourced by scripts/test and scripts/bench: starts the local PostgreSQL cluster (installing it
# under CI when missing) and exports ELEVATE_TEST_POSTGRES_URL, an admin URL on it.
say() { printf '\n==> %s\n' "$*"; }

start_postgres() {
  if [ -n "${ELEVATE_TEST_POSTGRES_URL:-}" ]; then
    say "PostgreSQL: using ELEVATE_TEST_POSTGRES_URL from the environment"
    return
  fi
  if ! command -v pg_ctlcluster >/dev/null 2>&1; then
    if [ -n "${CI:-}" ] && [ "$(id -u)" = 0 ]; then
      say "PostgreSQL: installing"
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    else
      say "PostgreSQL: not installed; its suites are skipped (set ELEVATE_TEST_POSTGRES_URL to run them)"
      return
    fi
  fi
  local version
  version=$(pg_lsclusters -h | awk 'NR==1 {print $1}')
  if [ -z "$version" ]; then
    version=$(ls /usr/lib/postgresql | sort -n | tail -n1)
    pg_createcluster "$version" main >/dev/null
  fi
  if [ "$(id -u)" != 0 ]; then
    say "PostgreSQL: not root, cannot start the local cluster; set ELEVATE_TEST_POSTGRES_URL to run its suites"
    return
  fi
  say "PostgreSQL $version: starting"
  pg_ctlcluster "$version" main start 2>/dev/null || true
  for _ in $(seq 1 30); do
    pg_isready -q -h 127.0.0.1 -p 5432 && break
    sleep 1
  done
  su postgres -c "psql -qc \"ALTER USER postgres PASSWORD 'postgres'\"" >/dev/null
  export ELEVATE_TEST_POSTGRES_URL=postgres://postgres:postgres@127.0.0.1:5432/postgres
}

