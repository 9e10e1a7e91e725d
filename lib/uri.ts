/**
 * Connection-string helpers shared by the CLI, the test-server launcher and anything else that
 * prints a MongoDB URI. Kept free of imports so that using it never loads a heavier module.
 */

/** Replaces user:password in a MongoDB URI (and password-like query params) with `***`. */
export function redactUri(uri: string): string {
  return uri
    .replace(/^(mongodb(?:\+srv)?:\/\/)[^@/?]*@/i, '$1***:***@')
    .replace(/([?&][^=&#]*(?:password|secret|token)[^=&#]*=)[^&#]*/gi, '$1***');
}
