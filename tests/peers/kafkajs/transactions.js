// KafkaJS transactions against a broker: commit COMMITTED values, abort ABORTED ones, then read
// the topic back with a read_committed consumer (KafkaJS's default) and print what it saw as
// one JSON line. Usage: node transactions.js BOOTSTRAP TOPIC
const { Kafka, logLevel } = require("kafkajs");

async function main() {
  const [bootstrap, topic] = process.argv.slice(2);
  const kafka = new Kafka({ clientId: "headrace-kafkajs", brokers: [bootstrap],
                            logLevel: logLevel.ERROR });
  const producer = kafka.producer({ transactionalId: "kafkajs-writer", idempotent: true,
                                    maxInFlightRequests: 1 });
  await producer.connect();
  const committed = await producer.transaction();
  await committed.send({ topic, messages: [0, 1, 2].map((i) => ({ value: `js-commit-${i}` })) });
  await committed.commit();
  const aborted = await producer.transaction();
  await aborted.send({ topic, messages: [0, 1, 2].map((i) => ({ value: `js-abort-${i}` })) });
  await aborted.abort();
  const last = await producer.transaction();
  await last.send({ topic, messages: [{ value: "js-last" }] });
  await last.commit();
  await producer.disconnect();

  const consumer = kafka.consumer({ groupId: "kafkajs-reader" });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  const seen = [];
  await consumer.run({ eachMessage: async ({ message }) => { seen.push(message.value.toString()); } });
  const deadline = Date.now() + 20000;
  while (seen.length < 4 && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  await new Promise((resolve) => setTimeout(resolve, 1500)); // anything extra shows up too
  await consumer.disconnect();
  console.log(JSON.stringify(seen));
}

main().catch((error) => { console.error(error); process.exit(1); });
