// DynamoDB Local bound to 127.0.0.1. Run in Java's single-file source mode, with the jar on the
// class path and the jar's own arguments:
//   java -cp DynamoDBLocal.jar local/dynamodb-local-loopback.java -inMemory -port 8000 ...
// DynamoDB Local 3.3.1 has no bind option (see `-help`): its Jetty server is built with a port
// only, which listens on every interface. So we build the server the way the jar's own main does,
// set the host on its connector before it starts, then start it. The field name is the jar's
// (DynamoDBProxyServer.server); if a new jar renames it, this fails at start with that name.
import java.lang.reflect.Field;
import org.eclipse.jetty.server.Connector;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;
import software.amazon.dynamodb.services.local.main.ServerRunner;
import software.amazon.dynamodb.services.local.server.DynamoDBProxyServer;

class DynamoDbLocalLoopback {
  public static void main(String[] args) throws Exception {
    DynamoDBProxyServer proxy = ServerRunner.createServerFromCommandLineArgs(args);
    Field field = DynamoDBProxyServer.class.getDeclaredField("server");
    field.setAccessible(true);
    Server server = (Server) field.get(proxy);
    for (Connector connector : server.getConnectors()) {
      ((ServerConnector) connector).setHost("127.0.0.1");
    }
    proxy.start();
  }
}
