package dev.headrace.peers;

import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Scenarios of the Java client (kafka-clients) against a broker, one per run:
 *
 * <pre>java -cp ... dev.headrace.peers.Main SCENARIO BOOTSTRAP TOPIC GROUP RECORDS</pre>
 *
 * SCENARIO is idempotent, transactional, transaction-admin, group-classic, group-consumer,
 * migration or admin. The topics a scenario reads are created by the caller, except admin's own.
 * It prints one JSON line: the results (tests/compat/test_java_client.py asserts on them), or {"step": ..., "error": ...}
 * with exit status 1 when a step failed.
 */
public final class Main {
    private Main() {}

    public static void main(String[] args) {
        if (args.length != 5) {
            System.err.println("usage: Main SCENARIO BOOTSTRAP TOPIC GROUP RECORDS");
            System.exit(2);
        }
        Scenario scenario = new Scenario(args[1], args[2], args[3], Integer.parseInt(args[4]));
        Map<String, Object> result;
        try {
            result = switch (args[0]) {
                case "idempotent" -> Producing.idempotent(scenario);
                case "transactional" -> Producing.transactional(scenario);
                case "group-classic" -> Groups.cooperativeSticky(scenario);
                case "group-consumer" -> Groups.consumerProtocol(scenario);
                case "migration" -> Groups.migration(scenario);
                case "admin" -> AdminOperations.run(scenario);
                case "transaction-admin" -> TransactionAdmin.run(scenario);
                default -> throw new IllegalArgumentException("unknown scenario " + args[0]);
            };
        } catch (Throwable failure) {
            Map<String, Object> error = new LinkedHashMap<>();
            error.put("step", scenario.step);
            error.put("error", failure.toString());
            Throwable cause = failure.getCause();
            if (cause != null) error.put("cause", cause.toString());
            failure.printStackTrace();
            System.out.println(Json.encode(error));
            System.out.flush();
            System.exit(1);
            return;
        }
        System.out.println(Json.encode(result));
        System.out.flush();
        // The clients' non-daemon threads are closed, but be sure the JVM ends with the scenario.
        System.exit(0);
    }
}
