/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  transform: {
    // p-limit 7, yocto-queue, dt-sql-parser and antlr4-c3 ship ESM only: swc turns them (and our TS)
    // into CommonJS for jest.
    '^.+\\.m?(t|j)sx?$': ['@swc/jest', { jsc: { target: 'es2023' }, module: { type: 'commonjs' } }],
  },
  transformIgnorePatterns: ['/node_modules/(?!(p-limit|yocto-queue|dt-sql-parser|antlr4-c3)/)'],
  testTimeout: 60_000,
};
