#!/usr/bin/env bash
# Finds (or installs) Apache ZooKeeper for the integration tests.
#
#   scripts/zookeeper.sh [classpath]   print the Java classpath of the ZooKeeper server on stdout
#   scripts/zookeeper.sh ensure        the same checks, prints nothing on success
#
# Looks, in order, at $ZK_CLASSPATH, Debian's zookeeper package (/usr/share/java/zookeeper.jar)
# and an Apache release unpacked at $ZOOKEEPER_HOME. When nothing is found and we are root on
# Debian/Ubuntu, installs the zookeeper package (and a JRE if `java` is missing) with apt-get.
set -euo pipefail

mode=${1:-classpath}
case $mode in
  classpath | ensure) ;;
  *) echo "usage: $0 [classpath|ensure]" >&2; exit 2 ;;
esac

find_classpath() {
  if [[ -n ${ZK_CLASSPATH:-} ]]; then
    echo "$ZK_CLASSPATH"
  elif [[ -f /usr/share/java/zookeeper.jar ]]; then
    # The jar's manifest Class-Path lists its dependencies but no SLF4J binding, so the server
    # would log nothing at all: add log4j's (both ship with libzookeeper-java's dependencies).
    local cp=/etc/zookeeper/conf:/usr/share/java/zookeeper.jar jar
    for jar in slf4j-log4j12 log4j-1.2; do
      if [[ -f /usr/share/java/$jar.jar ]]; then cp+=:/usr/share/java/$jar.jar; fi
    done
    echo "$cp"
  elif [[ -n ${ZOOKEEPER_HOME:-} ]] && compgen -G "$ZOOKEEPER_HOME/lib/*.jar" >/dev/null; then
    echo "$ZOOKEEPER_HOME/lib/*:$ZOOKEEPER_HOME/conf"
  else
    return 1
  fi
}

have_java() { command -v java >/dev/null || [[ -x ${JAVA_HOME:-/nonexistent}/bin/java ]]; }

die() {
  printf '%s\n' "zookeeper.sh: $1" \
    '  Install ZooKeeper and a JRE (Debian/Ubuntu: sudo apt-get install zookeeper),' \
    '  or unpack an Apache ZooKeeper release and set ZOOKEEPER_HOME (or set ZK_CLASSPATH),' \
    '  or point the tests at an existing server with ZK_CONNECT=host:port.' >&2
  exit 1
}

missing=()
find_classpath >/dev/null || missing+=(zookeeper)
have_java || missing+=(default-jre-headless)

if ((${#missing[@]})); then
  if ((EUID != 0)) || ! command -v apt-get >/dev/null; then
    die "missing: ${missing[*]} (and cannot install it: not root, or no apt-get)."
  fi
  echo "zookeeper.sh: installing ${missing[*]} with apt-get..." >&2
  {
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
  } >&2 || die "apt-get install ${missing[*]} failed."
fi

cp=$(find_classpath) || die "ZooKeeper not found."
have_java || die "java not found."
if [[ $mode == classpath ]]; then echo "$cp"; fi
