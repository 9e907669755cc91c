/*
 * Starts one Elasticsearch 8.x/9.x node in this JVM, for scripts/search-node.sh.
 *
 * Why not org.elasticsearch.bootstrap.Elasticsearch.main: since 8.18 the server's
 * own entry point installs "entitlements" through a Java agent
 * (lib/entitlement-agent/*.jar) that only the official tarball carries; it is not
 * published on Maven Central, and the old Security Manager path is gone. So this
 * does what Elasticsearch's own test framework does: build the Environment from
 * config/elasticsearch.yml, load the modules in modules/, construct a Node and
 * start it. The node is the real server code (same Node, same REST actions,
 * same Lucene); only the process sandbox (entitlements / seccomp) is missing.
 *
 * Modules run as plain class-path plugins (their plugin-descriptor.properties
 * without "modulename"), because the server jar is on the class path, not on
 * the module path.
 *
 * One addition: GET / and HEAD / (the "main" action). In the distribution they come
 * from the rest-root module, which is not published; detectd reads GET / at start.
 * RootHandler answers with the same fields, all read from the running node (Build,
 * cluster state, IndexVersion), so the body has the real version, build and uuid.
 *
 * System properties: es.path.home, es.path.conf. Stops on SIGTERM (closes the node).
 */

import org.elasticsearch.Build;
import org.elasticsearch.client.internal.node.NodeClient;
import org.elasticsearch.cluster.ClusterState;
import org.elasticsearch.cluster.service.ClusterService;
import org.elasticsearch.common.logging.LogConfigurator;
import org.elasticsearch.common.settings.Settings;
import org.elasticsearch.env.Environment;
import org.elasticsearch.index.IndexVersion;
import org.elasticsearch.node.InternalSettingsPreparer;
import org.elasticsearch.node.Node;
import org.elasticsearch.plugins.PluginBundle;
import org.elasticsearch.plugins.PluginsLoader;
import org.elasticsearch.rest.BaseRestHandler;
import org.elasticsearch.rest.RestController;
import org.elasticsearch.rest.RestRequest;
import org.elasticsearch.rest.RestResponse;
import org.elasticsearch.rest.RestStatus;
import org.elasticsearch.xcontent.XContentBuilder;

import java.lang.reflect.Method;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

public class DetectdEsNode {
    public static void main(String[] args) throws Exception {
        Path home = Path.of(System.getProperty("es.path.home"));
        Path conf = Path.of(System.getProperty("es.path.conf"));

        Settings input = Settings.builder().put("path.home", home.toString()).build();
        Environment env = InternalSettingsPreparer.prepareEnvironment(input, Map.of(), conf, () -> "detectd-node");

        LogConfigurator.setNodeName(Node.NODE_NAME_SETTING.get(env.settings()));
        LogConfigurator.configure(env, true); // console appender: the script sends stdout to node.log

        // The last argument (false): do not export server packages to named modules;
        // it needs the server on the module path, and our modules are unnamed anyway.
        PluginsLoader plugins = PluginsLoader.createPluginsLoader(loadModules(env.modulesDir()), Set.of(), Map.of(), false);
        Node node = new Node(env, plugins);
        node.injector().getInstance(RestController.class)
            .registerHandler(new RootHandler(node.injector().getInstance(ClusterService.class)));

        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                node.close();
                node.awaitClose(20, TimeUnit.SECONDS);
            } catch (Exception e) {
                e.printStackTrace();
            }
            stopped.countDown();
        }, "detectd-node-shutdown"));

        node.start();
        // The node's threads are daemons: keep the JVM alive until SIGTERM.
        stopped.await();
    }

    /** GET / and HEAD /: what the rest-root module's main action answers. */
    static final class RootHandler extends BaseRestHandler {
        private final ClusterService clusterService;

        RootHandler(ClusterService clusterService) {
            this.clusterService = clusterService;
        }

        @Override
        public String getName() {
            return "detectd_main_action";
        }

        @Override
        public List<Route> routes() {
            return List.of(new Route(RestRequest.Method.GET, "/"), new Route(RestRequest.Method.HEAD, "/"));
        }

        @Override
        protected RestChannelConsumer prepareRequest(RestRequest request, NodeClient client) {
            return channel -> {
                if (request.method() == RestRequest.Method.HEAD) {
                    channel.sendResponse(new RestResponse(RestStatus.OK, "application/json", ""));
                    return;
                }
                ClusterState state = clusterService.state();
                Build build = Build.current();
                XContentBuilder b = channel.newBuilder();
                b.startObject();
                b.field("name", clusterService.localNode().getName());
                b.field("cluster_name", state.getClusterName().value());
                b.field("cluster_uuid", state.metadata().clusterUUID());
                b.startObject("version")
                    .field("number", build.qualifiedVersion())
                    .field("build_flavor", build.flavor())
                    .field("build_type", build.type().displayName())
                    .field("build_hash", build.hash())
                    .field("build_date", build.date())
                    .field("build_snapshot", build.isSnapshot())
                    .field("lucene_version", IndexVersion.current().luceneVersion().toString())
                    .field("minimum_wire_compatibility_version", build.minWireCompatVersion())
                    .field("minimum_index_compatibility_version", build.minIndexCompatVersion())
                    .endObject();
                b.field("tagline", "You Know, for Search");
                b.endObject();
                channel.sendResponse(new RestResponse(RestStatus.OK, b));
            };
        }
    }

    /** PluginsLoader.loadModulesBundles(Path) in 8.x, (Path, boolean serverless) in 9.x. */
    @SuppressWarnings("unchecked")
    private static Set<PluginBundle> loadModules(Path dir) throws Exception {
        for (Method m : PluginsLoader.class.getMethods()) {
            if (m.getName().equals("loadModulesBundles")) {
                Object r = m.getParameterCount() == 1 ? m.invoke(null, dir) : m.invoke(null, dir, false);
                return (Set<PluginBundle>) r;
            }
        }
        throw new IllegalStateException("PluginsLoader.loadModulesBundles not found");
    }
}
