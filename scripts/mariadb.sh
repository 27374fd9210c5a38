# Sourced by scripts/test: starts the local MariaDB server (installing it under CI when
# missing) and exports ELEVATE_TEST_MYSQL_URL, an admin URL on it, for the mysql-roles suite.
start_mariadb() {
  if [ -n "${ELEVATE_TEST_MYSQL_URL:-}" ]; then
    say "MariaDB: using ELEVATE_TEST_MYSQL_URL from the environment"
    return
  fi
  if ! command -v mariadbd >/dev/null 2>&1; then
    if [ -n "${CI:-}" ] && [ "$(id -u)" = 0 ]; then
      say "MariaDB: installing"
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mariadb-server >/dev/null
    else
      say "MariaDB: not installed; the mysql-roles suite is skipped (set ELEVATE_TEST_MYSQL_URL to run it)"
      return
    fi
  fi
  if [ "$(id -u)" != 0 ]; then
    say "MariaDB: not root, cannot start the local server; set ELEVATE_TEST_MYSQL_URL to run its suite"
    return
  fi
  say "MariaDB: starting"
  if ! mariadb-admin ping >/dev/null 2>&1; then
    service mariadb start >/dev/null 2>&1 || true
  fi
  for _ in $(seq 1 30); do
    mariadb-admin ping >/dev/null 2>&1 && break
    sleep 1
  done
  # Root over TCP with a password (the tests' admin), beside Debian's socket login.
  mariadb -e "ALTER USER 'root'@'localhost' IDENTIFIED VIA unix_socket OR mysql_native_password USING PASSWORD('root')"
  export ELEVATE_TEST_MYSQL_URL=mysql://root:root@127.0.0.1:3306/
}
