// KafkaJS over SASL: produce VALUE to TOPIC and read it back with a consumer group, printing
// what was read as one JSON line; a refused authentication prints {"error": NAME} and exits 2.
// Usage: node sasl.js BOOTSTRAP TOPIC MECHANISM USER PASSWORD VALUE
const { Kafka, logLevel } = require("kafkajs");

async function main() {
  const [bootstrap, topic, mechanism, username, password, value] = process.argv.slice(2);
  const kafka = new Kafka({ clientId: "headrace-kafkajs-sasl", brokers: [bootstrap],
                            logLevel: logLevel.NOTHING, retry: { retries: 2 },
                            sasl: { mechanism, username, password } });
  const producer = kafka.producer();
  try {
    await producer.connect();
  } catch (error) {
    console.log(JSON.stringify({ error: error.name, message: error.message }));
    process.exit(2);
  }
  await producer.send({ topic, messages: [{ value }] });
  await producer.disconnect();
  const consumer = kafka.consumer({ groupId: `kafkajs-sasl-${mechanism}` });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  const seen = [];
  await consumer.run({ eachMessage: async ({ message }) => { seen.push(message.value.toString()); } });
  const deadline = Date.now() + 20000;
  while (!seen.includes(value) && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  await consumer.disconnect();
  console.log(JSON.stringify(seen));
}

main().catch((error) => { console.error(error); process.exit(1); });
