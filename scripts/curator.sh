#!/usr/bin/env bash
# Finds (or installs) Apache Curator for the Curator interop test (test/integration/curator.test.ts).
#
#   scripts/curator.sh [classpath]   print the Java classpath of Curator's recipes on stdout
#   scripts/curator.sh ensure        the same checks, prints nothing on success
#
# The classpath: Curator recipes + framework + client (Debian's libcurator-*-java), Guava (whose
# Debian jar also holds the failureaccess classes; a separate failureaccess.jar is added if there
# is one), SLF4J with the no-op binding (a quiet client), and ZooKeeper's client jars (the
# zookeeper.jar manifest brings its own dependencies: netty, jackson...).
# $CURATOR_CLASSPATH, when set, is printed as is. When a jar is missing and we are root with
# apt-get, installs libcurator-recipes-java (which pulls in the rest).
set -euo pipefail

mode=${1:-classpath}
case $mode in
  classpath | ensure) ;;
  *) echo "usage: $0 [classpath|ensure]" >&2; exit 2 ;;
esac

JAVA_DIR=/usr/share/java
REQUIRED=(curator-recipes curator-framework curator-client guava slf4j-api slf4j-nop zookeeper zookeeper-jute)
OPTIONAL=(failureaccess)

missing_jars() {
  local jar
  for jar in "${REQUIRED[@]}"; do
    [[ -f $JAVA_DIR/$jar.jar ]] || echo "$jar.jar"
  done
}

classpath() {
  local cp='' jar
  for jar in "${REQUIRED[@]}" "${OPTIONAL[@]}"; do
    if [[ -f $JAVA_DIR/$jar.jar ]]; then cp+=${cp:+:}$JAVA_DIR/$jar.jar; fi
  done
  echo "$cp"
}

die() {
  printf '%s\n' "curator.sh: $1" \
    '  Install Curator (Debian/Ubuntu: sudo apt-get install libcurator-recipes-java),' \
    '  or set CURATOR_CLASSPATH to a Java classpath with Curator recipes/framework/client,' \
    '  Guava, SLF4J and the ZooKeeper client.' >&2
  exit 1
}

if [[ -n ${CURATOR_CLASSPATH:-} ]]; then
  if [[ $mode == classpath ]]; then echo "$CURATOR_CLASSPATH"; fi
  exit 0
fi

missing=$(missing_jars | tr '\n' ' ')
if [[ -n $missing ]]; then
  if ((EUID != 0)) || ! command -v apt-get >/dev/null; then
    die "missing in $JAVA_DIR: ${missing% } (and cannot install it: not root, or no apt-get)."
  fi
  echo "curator.sh: missing ${missing% }; installing libcurator-recipes-java with apt-get..." >&2
  log=$(mktemp)
  trap 'rm -f "$log"' EXIT
  apt_install() {
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      -o DPkg::Lock::Timeout=120 libcurator-recipes-java libslf4j-java >>"$log" 2>&1
  }
  # No package lists (a fresh container) or stale ones (an old image): update them and try again.
  if ! apt_install && ! { apt-get update -qq -o DPkg::Lock::Timeout=120 >>"$log" 2>&1 && apt_install; }; then
    cat "$log" >&2
    die 'apt-get install libcurator-recipes-java failed.'
  fi
  missing=$(missing_jars | tr '\n' ' ')
  [[ -z $missing ]] || die "still missing after the install: ${missing% }."
fi

if [[ $mode == classpath ]]; then classpath; fi
