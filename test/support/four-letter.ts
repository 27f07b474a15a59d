/** ZooKeeper four letter words: the testing kit's (lib/testing/four-letter.ts). */
export {
  connectionCount,
  fourLetter,
  mntr,
  packetsReceived,
  resetPacketsReceived,
  watchCount,
  watchesByPath,
  type FourLetterTarget,
} from '../../lib/testing/four-letter.js';
