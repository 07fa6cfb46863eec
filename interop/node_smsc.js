// Interop: an SMSC written with the npm `smpp` package (not ours). It checks credentials,
// acks every submit_sm with a hex id, and sends a delivery receipt (text + TLVs) when asked.
// Usage: node node_smsc.js PORT EXPECTED_PARTS
// It exits 0 once it has acked EXPECTED_PARTS submits and every receipt was answered.
const smpp = require('smpp');

const port = Number(process.argv[2]);
const expected = Number(process.argv[3]);
let counter = 0x1a2b0;
let acked = 0;
let answered = 0;
let multipart = 0;

const server = smpp.createServer({}, (session) => {
  // A connection that is not SMPP (a port probe) is dropped, not fatal.
  session.on('error', () => session.close());
  session.on('bind_transceiver', (pdu) => {
    if (pdu.system_id !== 'acme' || pdu.password !== 'secret') {
      session.send(pdu.response({ command_status: smpp.ESME_RINVPASWD }));
      return;
    }
    session.send(pdu.response({ system_id: 'node-smsc' }));
  });
  session.on('enquire_link', (pdu) => session.send(pdu.response()));
  session.on('unbind', (pdu) => { session.send(pdu.response()); session.close(); });
  session.on('deliver_sm_resp', () => { answered += 1; done(); });
  session.on('submit_sm', (pdu) => {
    const id = (counter++).toString(16);
    if (pdu.esm_class & 0x40) multipart += 1;
    session.send(pdu.response({ message_id: id }));
    acked += 1;
    if (pdu.registered_delivery) {
      setTimeout(() => {
        session.deliver_sm({
          source_addr: pdu.destination_addr,
          destination_addr: pdu.source_addr,
          esm_class: 0x04,
          short_message: `id:${id} sub:001 dlvrd:001 submit date:2511241530 done date:2511241531 stat:DELIVRD err:000 text:`,
          receipted_message_id: id,
          message_state: 2,
        });
      }, 20);
    }
  });
});

function done() {
  if (acked >= expected && answered >= expected) {
    console.log(`node-smpp interop: ${acked} submits acked (${multipart} multipart parts), ${answered} receipts answered`);
    process.exit(0);
  }
}

server.listen(port, '127.0.0.1');
setTimeout(() => {
  console.error(`node-smpp interop: timed out with ${acked}/${expected} acked, ${answered} receipts answered`);
  process.exit(1);
}, 30000);
