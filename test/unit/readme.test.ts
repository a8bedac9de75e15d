import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { envShape } from '../../lambda/core/config';

describe('README', () => {
  const readme = readFileSync(join(__dirname, '../../README.md'), 'utf8');

  it.each(Object.keys(envShape.shape))('documents %s in the configuration table', (variable) => {
    expect(readme).toContain(`| \`${variable}\` |`);
  });
});
