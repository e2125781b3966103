/**
 * DICOM JSON as the page reads it from QIDO-RS and WADO-RS metadata: the one model (dicom/json-model.ts) and
 * the tags of the attributes the page names. The tags are written out rather than looked up in
 * dicom/dictionary.ts, which would carry dcmjs' whole dictionary into the page;
 * test/unit/dicom-dictionary.test.ts holds each one to the dictionary.
 */
export type { DicomJson } from '../dicom/json-model.js';

export const TAG = {
  PatientName: '00100010', PatientID: '00100020', PatientBirthDate: '00100030', PatientSex: '00100040',
  StudyInstanceUID: '0020000D', StudyDate: '00080020', StudyTime: '00080030', AccessionNumber: '00080050',
  StudyDescription: '00081030', ModalitiesInStudy: '00080061', NumberOfStudyRelatedSeries: '00201206',
  NumberOfStudyRelatedInstances: '00201208', SeriesInstanceUID: '0020000E', Modality: '00080060',
  SeriesNumber: '00200011', SeriesDescription: '0008103E', BodyPartExamined: '00180015', NumberOfSeriesRelatedInstances: '00201209',
  SOPInstanceUID: '00080018', InstanceNumber: '00200013', NumberOfFrames: '00280008', TransferSyntaxUID: '00020010',
  AvailableTransferSyntaxUID: '00083002', SliceLocation: '00201041', CineRate: '00180040',
} as const;
