// Per-file setup of the e2e project: tests against a real cluster wait for real
// controllers, so the default 5 s limit is far too short.
import { jest } from '@jest/globals';

jest.setTimeout(300000);
