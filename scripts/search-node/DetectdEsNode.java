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
 * System properties: es.path.home, es.path.conf. Stops on SIGTERM (closes the node).
 */

import org.elasticsearch.common.logging.LogConfigurator;
import org.elasticsearch.common.settings.Settings;
import org.elasticsearch.env.Environment;
import org.elasticsearch.node.InternalSettingsPreparer;
import org.elasticsearch.node.Node;
import org.elasticsearch.plugins.PluginBundle;
import org.elasticsearch.plugins.PluginsLoader;

import java.lang.reflect.Method;
import java.nio.file.Path;
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
