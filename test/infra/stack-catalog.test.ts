/** Template assertions on the stack with its defaults: the Glue database, tables and views, the Athena workgroup and named queries. */
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { Match, type Template } from 'aws-cdk-lib/assertions';
import { decodePrestoView } from '../../infra/constructs/presto-view';
import { hiveType, manifestColumns, prestoType, sessionColumns } from '../../lambda/snapshot/athena-columns';
import { readerViewColumns, readerViewSql } from '../../lambda/snapshot/reader-view';
import { synthStack } from '../helpers/synth-stack';

describe('SessionExportStack with defaults: Glue and Athena', () => {
  let template: Template;

  beforeAll(() => {
    // Prepare / Act: cdk-nag and the Control Tower controls run during this synth and throw on any finding.
    template = synthStack({ createDemoUsersTable: true });
  });

  describe('Glue and Athena', () => {
    const tableNamed = (name: string) =>
      Object.values(template.findResources('AWS::Glue::Table')).find(
        (t) => t.Properties.TableInput.Name === name,
      )?.Properties.TableInput;

    it('declares the sessions_raw columns exactly as derived from the record schema', () => {
      const table = tableNamed('sessions_raw');
      expect(table.StorageDescriptor.Columns).toEqual(
        sessionColumns.map((c) => ({ Name: c.name, Type: hiveType(c.type) })),
      );
      expect(table.PartitionKeys).toEqual([{ Name: 'dt', Type: 'string' }]);
    });

    it('reads gzip NDJSON under <prefix>/sessions/ into sessions_raw with the Hive JSON SerDe', () => {
      const table = tableNamed('sessions_raw');
      expect(table.StorageDescriptor.SerdeInfo.SerializationLibrary).toBe(
        'org.apache.hive.hcatalog.data.JsonSerDe',
      );
      expect(table.StorageDescriptor.InputFormat).toBe('org.apache.hadoop.mapred.TextInputFormat');
      expect(JSON.stringify(table.StorageDescriptor.Location)).toContain('/moonkey/sessions/');
    });

    it('projects dt partitions as dates up to NOW (no MSCK REPAIR)', () => {
      const table = tableNamed('sessions_raw');
      expect(table.Parameters).toMatchObject({
        'projection.enabled': 'true',
        'projection.dt.type': 'date',
        'projection.dt.format': 'yyyy-MM-dd',
        'projection.dt.range': '2024-01-01,NOW',
        classification: 'json',
      });
      expect(JSON.stringify(table.Parameters['storage.location.template'])).toContain(
        `/moonkey/sessions/dt=\${dt}/`,
      );
    });

    describe('the reader view sessions', () => {
      const view = () => tableNamed('sessions');

      it('is a Presto view in Glue, the way Athena stores the views it creates', () => {
        expect(view()).toMatchObject({
          TableType: 'VIRTUAL_VIEW',
          Parameters: { presto_view: 'true', comment: 'Presto View' },
          ViewExpandedText: '/* Presto View */',
          PartitionKeys: [],
        });
        expect(view().ViewOriginalText).toMatch(/^\/\* Presto View: [A-Za-z0-9+/=]+ \*\/$/);
      });

      it('lists every session column and dt in Hive spelling for Glue', () => {
        expect(view().StorageDescriptor.Columns).toEqual(
          readerViewColumns.map((c) => ({ Name: c.name, Type: hiveType(c.type) })),
        );
        expect(view().StorageDescriptor.Columns.map((c: { Name: string }) => c.Name)).toEqual(
          expect.arrayContaining(['run_id', 'observed_at', 'dt']),
        );
      });

      it('encodes the reader SQL over sessions_raw and manifests with Presto column types', () => {
        const definition = decodePrestoView(view().ViewOriginalText);
        expect(definition).toEqual({
          originalSql: readerViewSql({
            sessionsRaw: '"moon_key_session_export"."sessions_raw"',
            manifests: '"moon_key_session_export"."manifests"',
          }),
          catalog: 'awsdatacatalog',
          schema: 'moon_key_session_export',
          columns: readerViewColumns.map((c) => ({ name: c.name, type: prestoType(c.type) })),
          runAsInvoker: false,
          path: [],
        });
        const types = Object.fromEntries(definition.columns.map((c) => [c.name, c.type]));
        expect(types).toMatchObject({
          id: 'varchar',
          run_id: 'varchar',
          observed_at: 'bigint',
          started_at: 'double',
          snapshot_at: 'bigint',
          dt: 'varchar',
          device_fingerprint: 'row(user_agent varchar,ip varchar)',
        });
        expect(types.factors).toMatch(
          /^array\(row\(delivery_channel varchar,type varchar,method row\(.*last_verified_at double.*\)\)\)$/,
        );
        expect(definition.originalSql).toContain(`WHERE "status" = 'committed'`);
        expect(definition.originalSql).toContain('max("run_id")');
      });

      it('is created after the database and the tables it reads', () => {
        const views = Object.entries(template.findResources('AWS::Glue::Table')).filter(
          ([, t]) => t.Properties.TableInput.Name === 'sessions',
        );
        expect(views).toHaveLength(1);
        const dependsOn = views[0]?.[1].DependsOn as string[];
        for (const prefix of ['AthenaDatabase', 'AthenaSessionsRawTable', 'AthenaManifestsTable']) {
          expect(dependsOn.some((id) => id.startsWith(prefix))).toBe(true);
        }
      });
    });

    it('declares the manifests table over <prefix>/manifests/', () => {
      const table = tableNamed('manifests');
      expect(table.StorageDescriptor.Columns).toEqual(
        manifestColumns.map((c) => ({ Name: c.name, Type: hiveType(c.type) })),
      );
      expect(JSON.stringify(table.StorageDescriptor.Location)).toContain('/moonkey/manifests/');
      expect(table.Parameters['projection.dt.type']).toBe('date');
    });

    it('deletes the Glue database and tables with the stack (they hold no data), so a redeploy can recreate them', () => {
      for (const type of ['AWS::Glue::Database', 'AWS::Glue::Table']) {
        const resources = Object.values(template.findResources(type));
        expect(resources.length).toBeGreaterThan(0);
        for (const resource of resources) {
          expect(resource.DeletionPolicy).toBe('Delete');
          expect(resource.UpdateReplacePolicy).toBe('Delete');
        }
      }
    });

    it('names the database as the props doc comment says the default is', () => {
      const doc = readFileSync(path.join(__dirname, '../../infra/session-export-props.ts'), 'utf8');
      const documented = /stack name in snake_case, e\.g\. `([a-z_]+)`/.exec(doc)?.[1];
      expect(documented).toEqual(expect.any(String));
      template.hasResourceProperties('AWS::Glue::Database', { DatabaseInput: { Name: documented } });
    });

    it('has a workgroup with enforced settings, encrypted results and a bytes-scanned cutoff', () => {
      template.hasResourceProperties('AWS::Athena::WorkGroup', {
        WorkGroupConfiguration: {
          EnforceWorkGroupConfiguration: true,
          BytesScannedCutoffPerQuery: 10 * 1024 ** 3,
          ResultConfiguration: {
            EncryptionConfiguration: { EncryptionOption: 'SSE_S3' },
            OutputLocation: Match.anyValue(),
          },
        },
      });
    });

    it('ships the nine named queries against the stack database', () => {
      const queries = Object.values(template.findResources('AWS::Athena::NamedQuery')).map(
        (q) => q.Properties,
      );
      expect(queries.map((q) => q.Name).sort()).toEqual(
        [
          'Factor mix',
          'Latest complete snapshot',
          "One user's sessions (audit)",
          'Sessions about to expire',
          'Sessions per user (top 50)',
          'Sessions sharing one IP',
          'New sessions since the last snapshot',
          'Sessions ended since the last snapshot',
          'Users on an IP new for them',
        ].sort(),
      );
      const latest = queries.find((q) => q.Name === 'Latest complete snapshot');
      expect(latest.QueryString).toContain(`status = 'committed'`);
      expect(latest.QueryString).toContain('"moon_key_session_export"."manifests"');
      // Readers go through the view, never the raw table with every run's lines.
      for (const q of queries) expect(q.QueryString).not.toContain('sessions_raw');
      expect(
        queries.filter((q) => q.QueryString.includes('"moon_key_session_export"."sessions"')),
      ).toHaveLength(7);
      expect(
        queries.filter((q) => q.QueryString.includes('"moon_key_session_export"."session_changes"')),
      ).toHaveLength(2);
      expect(queries.every((q) => q.Database === 'moon_key_session_export')).toBe(true);
    });
  });
});
