import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { TAG } from '../../main/core/contract/dicom-json.js';
import { entryOf, tagOf, tagsOf, UnknownKeywordError } from '../../main/core/dicom/dictionary.js';
import { QUERY_ATTRIBUTES } from '../../main/core/dicom/keywords.js';

describe('the DICOM data dictionary', () => {
  test('gives tag, VR and VM by keyword, tags as DICOM JSON writes them', () => {
    assert.deepEqual(entryOf('PatientName'), { keyword: 'PatientName', tag: '00100010', vr: 'PN', vm: '1' });
    assert.equal(tagOf('StudyInstanceUID'), '0020000D');
    assert.equal(tagOf('SeriesDescription'), '0008103E');
    assert.equal(entryOf('ReferencedSOPSequence').vr, 'SQ');
    assert.equal(entryOf('ModalitiesInStudy').vm, '1-n');
    assert.deepEqual(tagsOf('RetrieveURL', 'FailureReason'), { RetrieveURL: '00081190', FailureReason: '00081197' });
  });

  test('a misspelt keyword is an error, not a silent undefined tag', () => {
    assert.throws(() => tagOf('PatientsName'), UnknownKeywordError);
    assert.throws(() => entryOf('toString'), UnknownKeywordError);
    assert.throws(() => tagsOf('StudyDate', 'StudyDay'), /"StudyDay" is not a keyword/);
  });

  test('the query attributes take their tags and VRs from it', () => {
    const byKeyword = Object.fromEntries(QUERY_ATTRIBUTES.map((a) => [a.keyword, [a.tag, a.vr]]));
    assert.deepEqual(byKeyword.PatientID, ['00100020', 'LO']);
    assert.deepEqual(byKeyword.AccessionNumber, ['00080050', 'SH']);
    assert.deepEqual(byKeyword.NumberOfStudyRelatedInstances, ['00201208', 'IS']);
    assert.deepEqual(byKeyword.Rows, ['00280010', 'US']);
    for (const attribute of QUERY_ATTRIBUTES) assert.equal(attribute.tag, tagOf(attribute.keyword));
  });
});

describe("the page's tags (main/core/contract/dicom-json.ts)", () => {
  test('are written out as the dictionary gives them', () => {
    for (const [keyword, tag] of Object.entries(TAG)) assert.equal(tag, tagOf(keyword), keyword);
  });
});
