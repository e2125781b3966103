import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import dimse from 'dcmjs-dimse';
import { cStoreResponsePdu, joinPdvs, readCStoreCommand, splitPdvs } from '../../main/core/dimse/pdata.js';

const { Dataset } = dimse;
const { CStoreRequest, CEchoRequest } = dimse.requests;
const CT = '1.2.840.10008.5.1.4.1.1.2';

function pdv(presentationContextId: number, control: number, value: Buffer): Buffer {
  const item = Buffer.alloc(6);
  item.writeUInt32BE(2 + value.length, 0);
  item[4] = presentationContextId;
  item[5] = control;
  return Buffer.concat([item, value]);
}

function commandBytes(request: { getCommandDataset(): { getDenaturalizedCommandDataset(): Buffer } }): Buffer {
  return request.getCommandDataset().getDenaturalizedCommandDataset();
}

describe('C-STORE fast path wire format', () => {
  test('splits a P-DATA-TF PDU into its PDVs without copying, and joins them back', () => {
    const pdu = joinPdvs([pdv(1, 0x03, Buffer.from('cmd!')), pdv(1, 0x00, Buffer.from('data')), pdv(3, 0x02, Buffer.from('end!'))]);
    const pdvs = splitPdvs(pdu)!;
    assert.deepEqual(pdvs.map((p) => [p.presentationContextId, p.command, p.last, p.value.toString()]),
      [[1, true, true, 'cmd!'], [1, false, false, 'data'], [3, false, true, 'end!']]);
    assert.equal(pdvs[1]!.value.buffer, pdu.buffer);
    assert.deepEqual(joinPdvs(pdvs.map((p) => p.item)), pdu);
  });

  test('refuses PDV items that run past the PDU', () => {
    const pdu = joinPdvs([pdv(1, 0x00, Buffer.from('data'))]);
    pdu.writeUInt32BE(100, 6);
    assert.equal(splitPdvs(pdu), undefined);
  });

  test('reads the C-STORE-RQ that dcmjs-dimse writes, and nothing else', () => {
    const request = new CStoreRequest(new Dataset({ SOPClassUID: CT, SOPInstanceUID: '1.2.3.45' }, '1.2.840.10008.1.2.1'));
    request.setMessageId(77);
    assert.deepEqual(readCStoreCommand(commandBytes(request)), { messageId: 77, sopClassUid: CT, sopInstanceUid: '1.2.3.45' });
    assert.equal(readCStoreCommand(commandBytes(new CEchoRequest())), undefined);
  });

  test('writes a C-STORE-RSP that dcmjs-dimse reads back', () => {
    const pdu = cStoreResponsePdu(5, { messageId: 9, sopClassUid: CT, sopInstanceUid: '1.2.3.4' }, 0xa900, 'mismatch');
    assert.equal(pdu.readUInt32BE(2), pdu.length - 6);
    const [response] = splitPdvs(pdu)!;
    assert.equal(response!.presentationContextId, 5);
    assert.ok(response!.command && response!.last);
    const elements = new Dataset(response!.value, '1.2.840.10008.1.2').getElements() as Record<string, unknown>;
    assert.equal(elements.CommandGroupLength, response!.value.length - 12);
    assert.equal(elements.AffectedSOPClassUID, CT);
    assert.equal(elements.AffectedSOPInstanceUID, '1.2.3.4');
    assert.equal(elements.CommandField, 0x8001);
    assert.equal(elements.MessageIDBeingRespondedTo, 9);
    assert.equal(elements.CommandDataSetType, 0x0101);
    assert.equal(elements.Status, 0xa900);
    assert.equal(elements.ErrorComment, 'mismatch');
  });
});
