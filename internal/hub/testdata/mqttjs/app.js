// An app, as any mqtt.js user would write it: connect with the app's id
// and secret, subscribe, print "topic payload" for every message.
const mqtt = require('mqtt');

const client = mqtt.connect(process.env.URL, {
  clientId: process.env.APP,
  username: process.env.APP,
  password: process.env.SECRET,
  protocolVersion: Number(process.env.VERSION),
  reconnectPeriod: 0,
});
client.on('connect', () => {
  client.subscribe(process.env.FILTER, { qos: 1 }, (err, granted) => {
    if (err) {
      console.error('subscribe failed', err.message);
      process.exit(1);
    }
    console.error('granted', JSON.stringify(granted));
  });
});
client.on('message', (topic, payload) => {
  process.stdout.write(topic + ' ' + payload.toString() + '\n');
});
client.on('error', (err) => {
  console.error('error', err.message);
  process.exit(1);
});
