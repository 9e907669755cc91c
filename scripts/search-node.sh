#!/usr/bin/env bash
# A real single-node search engine on 127.0.0.1 for detectd's live tests, built
# only from artifacts on Maven Central (resolved by Maven into ~/.m2).
#
#   scripts/search-node.sh start    lay out a node home, start the JVM, wait until the
#                                   cluster is yellow or better; last stdout line = URL
#   scripts/search-node.sh url      URL of the running node (exit 1 if none)
#   scripts/search-node.sh status   "<engine> <version> <url> pid <pid>" or "not running" (exit 3)
#   scripts/search-node.sh stop     TERM (then KILL) the node, remove its data
#
# Environment:
#   DETECTD_SEARCH_ENGINE   elasticsearch | opensearch   (default: the first that starts,
#                           in that order)
#   DETECTD_NODE_DIR        state, logs and node homes   (default /tmp/detectd-search-node;
#                           must be reachable by an unprivileged user when run as root)
#   DETECTD_NODE_PORT       HTTP port                    (default: a free one)
#   DETECTD_ES_VERSION      default 9.5.3 when a JDK >= 21 is found, else 8.19.21
#   DETECTD_ES_ESQL=1       Elasticsearch with ES|QL (x-pack-core, -esql-core, -esql):
#                           8.19.21 only (9.5.3's ES|QL jars are not all on Maven Central);
#                           its own node home (elasticsearch-8.19.21-esql)
#   DETECTD_OS_VERSION      default 2.19.6
#   DETECTD_ES_JAVA_HOME / DETECTD_OS_JAVA_HOME   force the JDK for one engine
#   DETECTD_NODE_START_TIMEOUT  seconds to wait for the node (default 180)
#   DETECTD_NODE_USER       user the JVM runs as when we are root (default detectd-search)
#
# See scripts/search-node/NOTES.md for what resolves, what the node lacks and timings.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
RES_DIR="$SCRIPT_DIR/search-node"
NODE_DIR=${DETECTD_NODE_DIR:-/tmp/detectd-search-node}
NODE_USER=${DETECTD_NODE_USER:-detectd-search}
START_TIMEOUT=${DETECTD_NODE_START_TIMEOUT:-180}
HEAP=512m
STATE="$NODE_DIR/state"      # key=value lines describing the running node
NODE_LOG="$NODE_DIR/node.log"

log() { printf 'search-node: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# ---------------------------------------------------------------- state file

state_get() { # key -> value ("" if absent)
    [[ -f $STATE ]] || return 0
    sed -n "s/^$1=//p" "$STATE" | head -n1
}

pid_alive() { # pid: alive and one of ours (its command line names our node dir)
    local pid=$1
    [[ -n $pid && -r /proc/$pid/cmdline ]] || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$NODE_DIR/"
}

proc_running() { # pid: exists and is not a zombie (an exited JVM lingers as one until reaped)
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) } # the state letter follows "(comm) "
    [[ ${stat:0:1} != Z ]]
}

http_ok() { # url -> 0 when it answers 2xx
    curl -fsS -o /dev/null --max-time 10 "$1" 2>/dev/null
}

node_is() { # url pid -> 0 when the node answering on url is the JVM with that pid
    # (a port is only a number: another node may answer there, e.g. a leftover one)
    curl -fsS --max-time 10 "$1/_nodes/_local/process?filter_path=nodes.*.process.id" 2>/dev/null |
        grep -q "\"id\":$2[,}]"
}

running_url() { # prints the URL of a live node, or returns 1
    local pid url
    pid=$(state_get pid)
    url=$(state_get url)
    pid_alive "$pid" || return 1
    node_is "$url" "$pid" || return 1
    printf '%s\n' "$url"
}

# ---------------------------------------------------------------- helpers

java_major() { # path/to/java -> major version (17, 21, 25...)
    local v
    v=$("$1" -version 2>&1 | sed -n 's/.*version "\([0-9][0-9.]*\).*/\1/p' | head -n1)
    v=${v#1.}
    printf '%s\n' "${v%%.*}"
}

find_java() { # min max [forced JAVA_HOME] -> path of a java whose major is in [min,max]
    local min=$1 max=$2 forced=${3:-} cand major seen=" "
    local -a cands=()
    if [[ -n $forced ]]; then
        cands=("$forced/bin/java")
    else
        [[ -n ${JAVA_HOME:-} ]] && cands+=("$JAVA_HOME/bin/java")
        command -v java >/dev/null 2>&1 && cands+=("$(command -v java)")
        for cand in /usr/lib/jvm/*/bin/java; do cands+=("$cand"); done
    fi
    for cand in "${cands[@]}"; do
        [[ -x $cand ]] || continue
        cand=$(readlink -f "$cand")
        [[ $seen == *" $cand "* ]] && continue
        seen+="$cand "
        major=$(java_major "$cand")
        [[ -n $major ]] && ((major >= min && major <= max)) && { printf '%s\n' "$cand"; return 0; }
    done
    return 1
}

free_port() { # a free TCP port on 127.0.0.1
    if command -v python3 >/dev/null 2>&1; then
        python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
        return
    fi
    local p # no python: probe upwards from 9250 (a port that refuses a connection is free)
    for ((p = 9250; p < 9400; p++)); do
        (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
    done
    die "no free port found in 9250-9399"
}

# Elasticsearch and OpenSearch refuse to run as root. When we are root (CI is),
# run the JVM as a system user, created on first use; "nobody" if that fails.
RUN_AS=()
setup_user() {
    [[ $(id -u) -eq 0 ]] || return 0
    if ! id -u "$NODE_USER" >/dev/null 2>&1; then
        useradd --system --no-create-home --home-dir /nonexistent \
            --shell /usr/sbin/nologin "$NODE_USER" >/dev/null 2>&1 || NODE_USER=nobody
    fi
    # setpriv execs the JVM in place, so $! is the JVM's own pid (runuser would fork).
    RUN_AS=(setpriv --reuid="$(id -u "$NODE_USER")" --regid="$(id -g "$NODE_USER")" --init-groups --)
}

# ---------------------------------------------------------------- jars

# resolve_jars engine version home: Maven copies every runtime jar of the profile
# into a staging folder and writes the dependency tree; jars are then split into
# $home/lib (the server class path) and $home/modules/<artifactId>/ by the
# top-level dependency they hang under (see pom.xml).
resolve_jars() {
    local engine=$1 version=$2 home=$3 stage="$3/.stage"
    rm -rf "$stage" "${home:?}/lib" "${home:?}/modules"
    mkdir -p "$stage" "$home/lib" "$home/modules"
    log "resolving $engine $version with Maven (~/.m2 cache)"
    # -q hides the download chatter; Maven's errors still reach stderr.
    if ! mvn -B -q -Dstyle.color=never -f "$RES_DIR/pom.xml" -P"$engine${EXTRA_PROFILES:-}" -Dengine.version="$version" \
        -DincludeScope=runtime -DoutputDirectory="$stage/jars" -DoutputFile="$stage/tree.txt" \
        dependency:copy-dependencies dependency:tree </dev/null 2>&1 |
        sed 's/\x1b\[[0-9;]*m//g; /^[[:space:]]*$/d' >&2; then # (Maven 3.8 emits colour resets even with -B)
        log "Maven could not resolve $engine $version"
        return 1
    fi
    # Tree line: "|  +- group:artifact:type[:classifier]:version:scope"; depth 1 = a
    # dependency of our pom. Print "<its groupId> <its artifactId> <jar file>" per line.
    awk 'NR > 1 {
            match($0, /[a-zA-Z0-9]/); depth = (RSTART - 1) / 3
            split(substr($0, RSTART), w, " "); n = split(w[1], c, ":")
            if (n == 6) file = c[2] "-" c[5] "-" c[4] "." c[3]; else file = c[2] "-" c[4] "." c[3]
            if (depth == 1) { group = c[1]; top = c[2] }
            print group, top, file
         }' "$stage/tree.txt" >"$stage/groups.txt"
    # modules are the top-level dependencies from *.plugin groups; the rest is the server
    local group top file
    while read -r group top file; do
        [[ -f $stage/jars/$file ]] || continue # test/provided scope: not copied
        if [[ $group == *.plugin ]]; then
            mkdir -p "$home/modules/$top"
            mv "$stage/jars/$file" "$home/modules/$top/"
        else
            mv "$stage/jars/$file" "$home/lib/"
        fi
    done <"$stage/groups.txt"
    mv "$stage/jars/"* "$home/lib/" 2>/dev/null || true # anything the tree did not name
    rm -rf "$stage"
}

# ---------------------------------------------------------------- Elasticsearch

layout_es() { # version home java
    local version=$1 home=$2 java=$3 dir name jar desc
    resolve_jars elasticsearch "$version" "$home" || return 1
    # Each module jar carries META-INF/es-plugins/<name>/plugin-descriptor.properties.
    # The node runs with the server on the class path, so drop "modulename" (which
    # would ask for a Java module layer) and name the folder after the plugin.
    for dir in "$home"/modules/*/; do
        dir=${dir%/}
        jar=$(compgen -G "$dir/$(basename "$dir")-[0-9]*.jar" | head -n1)
        desc=$(unzip -Z1 "$jar" | grep -m1 '^META-INF/es-plugins/.*/plugin-descriptor.properties$' || true)
        [[ -n $desc ]] || { log "no plugin descriptor in $jar"; return 1; }
        name=$(basename "$(dirname "$desc")")
        unzip -p "$jar" "$desc" | grep -v '^modulename=' >"$dir/plugin-descriptor.properties"
        [[ $dir == "$home/modules/$name" ]] || mv "$dir" "$home/modules/$name"
    done
    # ES|QL (DETECTD_ES_ESQL=1): x-pack-esql extends lang-painless and x-pack-ml, which are
    # not published: keep only the extended plugins that are present (what ES|QL runs needs
    # neither). x-pack-core needs elasticsearch-ssl-config, which Maven's tree lists under
    # transport-netty4 only (the distribution ships it in both module folders).
    local d ext kept p
    for d in "$home"/modules/*/; do
        ext=$(sed -n 's/^extended\.plugins=//p' "$d/plugin-descriptor.properties")
        [[ -n $ext ]] || continue
        kept=
        for p in ${ext//,/ }; do
            if [[ -d $home/modules/$p ]]; then
                kept=${kept:+$kept,}$p
            else
                log "$(basename "$d"): extended plugin $p is not published, left out"
            fi
        done
        sed -i "s/^extended\.plugins=.*/extended.plugins=$kept/" "$d/plugin-descriptor.properties"
    done
    if [[ -d $home/modules/x-pack-core ]]; then
        cp "$home"/modules/transport-netty4/elasticsearch-ssl-config-*.jar "$home/modules/x-pack-core/"
    fi
    # Elasticsearch loads zstd (the best_compression codec: without it a shard of such
    # an index fails) from lib/platform/<os-arch>/, where the tarball ships its own
    # copy; the jars do not carry it, so point it at the system's libzstd (Debian's
    # libzstd1, on every Debian machine as a dependency of apt and dpkg).
    local zstd arch
    zstd=$(ldconfig -p 2>/dev/null | awk '/libzstd\.so\.1 .*x86-64|libzstd\.so\.1 .*AArch64/ { print $NF; exit }')
    case $(uname -m) in x86_64) arch=linux-x64 ;; aarch64) arch=linux-aarch64 ;; *) arch= ;; esac
    if [[ -n $zstd && -n $arch ]]; then
        mkdir -p "$home/lib/platform/$arch"
        ln -sf "$zstd" "$home/lib/platform/$arch/libzstd.so"
    else
        log "warning: no system libzstd.so.1: indices with index.codec=best_compression will fail"
    fi
    mkdir -p "$home/launcher"
    "$(dirname "$java")/javac" -nowarn -d "$home/launcher" -cp "$home/lib/*" \
        "$RES_DIR/DetectdEsNode.java" 2>&1 | grep -v '^Note:' >&2 || true
    [[ -f $home/launcher/DetectdEsNode.class ]] || { log "could not compile DetectdEsNode.java"; return 1; }
}

config_es() { # home port tport data logs
    cat >"$1/config/elasticsearch.yml" <<EOF
# written by scripts/search-node.sh
cluster.name: detectd-test
node.name: detectd-node
network.host: 127.0.0.1
http.port: $2
transport.port: $3
discovery.type: single-node
path.data: $4
path.logs: $5
# the test disk may be nearly full: never block writes or refuse shards for it
cluster.routing.allocation.disk.threshold_enabled: false
action.destructive_requires_name: false
# No x-pack, ml, geoip or security modules are on the node at all, so there is
# nothing to switch off (their settings would be rejected as unknown).
EOF
}

# The JVM options of the distribution's jvm.options that matter here; -XX:-UsePerfData
# so that no /tmp/hsperfdata_<user> folder is left behind. Vector API and native
# access: Lucene/ES use them when allowed. enableVectorLibrary=false: ES's own SIMD
# library (libvec.so) is only in the tarball, and on 9.x its absence would switch
# off ALL native access, zstd included (see layout_es).
java_cmd_es() { # home java -> the JVM command line (one word per line)
    printf '%s\n' "$2" -Xms$HEAP -Xmx$HEAP -XX:+UseG1GC -XX:-OmitStackTraceInFastThrow \
        -XX:-UsePerfData \
        -Djava.io.tmpdir="$1/tmp" -Dfile.encoding=UTF-8 -Djava.locale.providers=CLDR \
        -Djava.awt.headless=true -Dlog4j.shutdownHookEnabled=false -Dlog4j2.disable.jmx=true \
        -Dlog4j2.formatMsgNoLookups=true -Dio.netty.noUnsafe=true -Dio.netty.noKeySetOptimization=true \
        -Dio.netty.recycler.maxCapacityPerThread=0 \
        --add-modules=jdk.incubator.vector --enable-native-access=ALL-UNNAMED \
        -Dorg.elasticsearch.nativeaccess.enableVectorLibrary=false \
        -Des.path.home="$1" -Des.path.conf="$1/config" \
        -cp "$1/launcher:$1/lib/*" DetectdEsNode
}

# ---------------------------------------------------------------- OpenSearch

# artifactId -> plugin name | class | extended plugins. The published module jars
# carry no plugin-descriptor.properties, so we write them from this table.
os_module() {
    case $1 in
    transport-netty4-client) echo "transport-netty4|org.opensearch.transport.Netty4Plugin|" ;;
    lang-painless) echo "lang-painless|org.opensearch.painless.PainlessPlugin|" ;;
    analysis-common) echo "analysis-common|org.opensearch.analysis.common.CommonAnalysisPlugin|lang-painless" ;;
    mapper-extras-client) echo "mapper-extras|org.opensearch.index.mapper.MapperExtrasPlugin|" ;;
    parent-join-client) echo "parent-join|org.opensearch.join.ParentJoinPlugin|" ;;
    reindex-client) echo "reindex|org.opensearch.index.reindex.ReindexPlugin|" ;;
    *) return 1 ;;
    esac
}

layout_os() { # version home java
    local version=$1 home=$2 dir art spec name class ext jmajor
    resolve_jars opensearch "$version" "$home" || return 1
    jmajor=$(java_major "$3")
    for dir in "$home"/modules/*/; do
        dir=${dir%/}
        art=$(basename "$dir")
        spec=$(os_module "$art") || { log "unknown OpenSearch module $art (add it to os_module)"; return 1; }
        IFS='|' read -r name class ext <<<"$spec"
        {
            echo "# written by scripts/search-node.sh (the published jar has no descriptor)"
            echo "name=$name"
            echo "description=$name module (from org.opensearch.plugin:$art:$version)"
            echo "version=$version"
            echo "opensearch.version=$version"
            echo "java.version=$jmajor"
            echo "classname=$class"
            [[ -n $ext ]] && echo "extended.plugins=$ext"
            echo "has.native.controller=false"
        } >"$dir/plugin-descriptor.properties"
        # the Security Manager grants the distribution ships beside some modules
        [[ -f $RES_DIR/opensearch-policies/$name.policy ]] &&
            cp "$RES_DIR/opensearch-policies/$name.policy" "$dir/plugin-security.policy"
        [[ $name == "$art" ]] || mv "$dir" "$home/modules/$name"
    done
}

config_os() { # home port tport data logs
    cat >"$1/config/opensearch.yml" <<EOF
# written by scripts/search-node.sh
cluster.name: detectd-test
node.name: detectd-node
network.host: 127.0.0.1
http.port: $2
transport.port: $3
discovery.type: single-node
path.data: $4
path.logs: $5
cluster.routing.allocation.disk.threshold_enabled: false
action.destructive_requires_name: false
# No security, ml, geoip or k-NN plugins are on the node (they are not loaded at all).
EOF
}

java_cmd_os() { # home java: OpenSearch's own bootstrap (Security Manager, jar hell check)
    printf '%s\n' "$2" -Xms$HEAP -Xmx$HEAP -XX:+UseG1GC -XX:-OmitStackTraceInFastThrow \
        -XX:-UsePerfData \
        -Djava.io.tmpdir="$1/tmp" -Dfile.encoding=UTF-8 -Djava.locale.providers=SPI,COMPAT \
        -Djava.awt.headless=true -Dlog4j.shutdownHookEnabled=false -Dlog4j2.disable.jmx=true \
        -Dlog4j2.formatMsgNoLookups=true -Dio.netty.noUnsafe=true -Dio.netty.noKeySetOptimization=true \
        -Dio.netty.recycler.maxCapacityPerThread=0 -Djna.nosys=true -Djava.security.manager=allow \
        -Dopensearch.path.home="$1" -Dopensearch.path.conf="$1/config" \
        -cp "$1/lib/*" org.opensearch.bootstrap.OpenSearch
}

# ---------------------------------------------------------------- start / stop

# start_engine engine: lay out (or reuse) the node home, start the JVM, wait.
start_engine() {
    local engine=$1 short version java home stamp port tport data url pid flavour=
    case $engine in
    elasticsearch)
        short=es
        # 9.x is compiled for Java 21; 8.19 runs on 17. Without a version asked for,
        # take 9.5.3 when a JDK >= 21 is there, else 8.19.21.
        version=${DETECTD_ES_VERSION:-}
        if [[ -z $version ]]; then
            if java=$(find_java 21 99 "${DETECTD_ES_JAVA_HOME:-}"); then version=9.5.3; else version=8.19.21; fi
        fi
        if [[ ${DETECTD_ES_ESQL:-} == 1 ]]; then
            [[ -n ${DETECTD_ES_VERSION:-} ]] || version=8.19.21
            if [[ $version != 8.* ]]; then
                log "DETECTD_ES_ESQL=1 needs DETECTD_ES_VERSION=8.19.21: the ES|QL jars of $version are not all on Maven Central"
                return 1
            fi
            EXTRA_PROFILES=,esql
            flavour=-esql
        fi
        if [[ $version == 9.* ]]; then
            java=$(find_java 21 99 "${DETECTD_ES_JAVA_HOME:-}") || java=
        else
            java=$(find_java 17 99 "${DETECTD_ES_JAVA_HOME:-}") || java=
        fi
        ;;
    opensearch)
        short=os
        version=${DETECTD_OS_VERSION:-2.19.6}
        # 2.x installs a Security Manager (removed in Java 24) and wants the COMPAT
        # locale data (removed in 23): 17 to 21
        java=$(find_java 17 21 "${DETECTD_OS_JAVA_HOME:-}") || java=
        ;;
    *) die "unknown engine '$engine' (elasticsearch|opensearch)" ;;
    esac
    [[ -n ${java:-} ]] || { log "no suitable JDK for $engine $version"; return 1; }

    # The layout is reused while the pom, the launcher, the policies, the version
    # and the JDK are unchanged (so a warm start skips Maven entirely).
    home="$NODE_DIR/$engine-$version$flavour"
    stamp=$(cat "$RES_DIR/pom.xml" "$RES_DIR/DetectdEsNode.java" "$RES_DIR"/opensearch-policies/* \
        <(echo "$engine $version$flavour $java layout-v2") | sha256sum | cut -c1-16)
    if [[ $(cat "$home/.layout" 2>/dev/null) != "$stamp" ]]; then
        rm -rf "$home"
        mkdir -p "$home/config"
        "layout_$short" "$version" "$home" "$java" || { rm -rf "$home"; return 1; }
        echo "$stamp" >"$home/.layout"
    fi

    port=${DETECTD_NODE_PORT:-$(free_port)}
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        log "port $port on 127.0.0.1 is already in use"
        return 1
    fi
    tport=$(free_port)
    [[ $tport != "$port" ]] || tport=$(free_port)
    data=$(mktemp -d "${TMPDIR:-/tmp}/detectd-search-data.XXXXXX")
    # bin/ and plugins/ are only checked for (and must exist: the node would try to create them)
    mkdir -p "$home/logs" "$home/tmp" "$home/plugins" "$home/bin"
    cp "$RES_DIR/log4j2.properties" "$home/config/log4j2.properties"
    "config_$short" "$home" "$port" "$tport" "$data" "$home/logs"
    url="http://127.0.0.1:$port"

    # the JVM user must own what it writes (and reach the node dir)
    if [[ ${#RUN_AS[@]} -gt 0 ]]; then
        chown -R "$NODE_USER:" "$data" "$home/logs" "$home/tmp" "$home/config" "$home/plugins"
        chmod 755 "$NODE_DIR"
    fi

    local -a cmd
    mapfile -t cmd < <("java_cmd_$short" "$home" "$java")
    log "starting $engine $version on $url (java $(java_major "$java"), log $NODE_LOG)"
    : >"$NODE_LOG"
    # new session (setsid): the node survives this shell and gets no terminal signals
    # (9>&-: the JVM must not inherit our lock file, or it would hold the lock forever)
    (cd "$home" && HOME="$home" exec setsid "${RUN_AS[@]}" "${cmd[@]}" </dev/null >>"$NODE_LOG" 2>&1 9>&-) &
    pid=$!
    printf 'engine=%s\nversion=%s\nurl=%s\npid=%s\ndata=%s\nhome=%s\njava=%s\n' \
        "$engine" "$version" "$url" "$pid" "$data" "$home" "$java" >"$STATE"

    # wait for yellow (green for 0-replica indices): the node elects itself, then answers
    local deadline=$((SECONDS + START_TIMEOUT))
    while ((SECONDS < deadline)); do
        # (not pid_alive: until the subshell has exec'd the JVM its command line is ours)
        if ! proc_running "$pid"; then
            log "$engine exited during start; last lines of $NODE_LOG:"
            tail -n 40 "$NODE_LOG" >&2
            stop_node quiet
            return 1
        fi
        if http_ok "$url/_cluster/health?wait_for_status=yellow&timeout=2s"; then
            node_is "$url" "$pid" && return 0
            log "another server answers on $url: not the node we started"
            stop_node quiet
            return 1
        fi
        sleep 1
    done
    log "$engine did not answer on $url within ${START_TIMEOUT}s; last lines of $NODE_LOG:"
    tail -n 40 "$NODE_LOG" >&2
    stop_node quiet
    return 1
}

stop_node() { # [quiet]: TERM, KILL after 30 s, then remove the data folder and state
    local pid data i
    pid=$(state_get pid)
    data=$(state_get data)
    if pid_alive "$pid"; then
        kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < 300; i++)); do pid_alive "$pid" || break; sleep 0.1; done
        if pid_alive "$pid"; then
            log "node $pid ignored TERM for 30s: KILL"
            kill -KILL "$pid" 2>/dev/null || true
            for ((i = 0; i < 50; i++)); do pid_alive "$pid" || break; sleep 0.1; done
        fi
        # an exited JVM may stay a zombie until its parent (init) reaps it: give it a moment
        for ((i = 0; i < 50; i++)); do [[ -e /proc/$pid ]] || break; sleep 0.1; done
        [[ ${1:-} == quiet ]] || log "stopped $(state_get engine) (pid $pid)"
    elif [[ ${1:-} != quiet ]]; then
        log "not running"
    fi
    # only remove what we created: a temp folder named by us
    [[ $data == */detectd-search-data.* && -d $data ]] && rm -rf "$data"
    rm -f "$STATE"
}

cmd_start() {
    local url engines engine
    if url=$(running_url); then
        printf '%s\n' "$url"
        return 0
    fi
    stop_node quiet # stale state from a crashed node
    command -v mvn >/dev/null 2>&1 || die "mvn not found (apt-get install maven)"
    if [[ -n ${DETECTD_NODE_PORT:-} ]] && (exec 3<>"/dev/tcp/127.0.0.1/$DETECTD_NODE_PORT") 2>/dev/null; then
        die "DETECTD_NODE_PORT=$DETECTD_NODE_PORT: port already in use on 127.0.0.1"
    fi
    setup_user
    engines=${DETECTD_SEARCH_ENGINE:-elasticsearch opensearch}
    for engine in $engines; do
        if start_engine "$engine"; then
            log "$engine $(state_get version) is up"
            state_get url
            return 0
        fi
        log "$engine did not start"
    done
    die "no search engine could be started (tried: $engines)"
}

cmd_status() {
    local url version
    if url=$(running_url); then
        # the version as the node reports it (/_nodes answers alike on both engines)
        version=$(curl -fsS --max-time 10 "$url/_nodes/_local?filter_path=nodes.*.version" |
            sed -n 's/.*"version":"\([^"]*\)".*/\1/p')
        echo "$(state_get engine) ${version:-$(state_get version)} $url pid $(state_get pid)"
    else
        echo "not running"
        return 3
    fi
}

main() {
    [[ $# -eq 1 ]] || die "usage: $0 start|stop|url|status"
    mkdir -p "$NODE_DIR"
    case $1 in
    start | stop)
        # one start/stop at a time (parallel test binaries may all call start)
        exec 9>"$NODE_DIR/.lock"
        flock 9
        ;;
    esac
    case $1 in
    start) cmd_start ;;
    stop) stop_node ;;
    url) running_url || { log "not running"; exit 1; } ;;
    status) cmd_status ;;
    *) die "usage: $0 start|stop|url|status" ;;
    esac
}

main "$@"
