// Errors that name the file and the cause. Messages never include file contents:
// a key that ends up in a message ends up in a log line or a status field.
export class CertificateFileError extends Error {
  constructor(
    readonly file: string,
    readonly reason: string,
  ) {
    super(`${file}: ${reason}`);
    this.name = 'CertificateFileError';
  }
}
