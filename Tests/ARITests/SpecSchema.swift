import ARI
import Foundation
import TestSupport

/// The ARI models of the official Swagger 1.2 description, loaded at run time from `Tests/Fixtures/ari-spec`
/// (or `ARI_SPEC_DIR`), and a validator: required properties present, declared types respected
/// (recursively, through `List[...]`, model references and the `Message`/`Event` discriminator).
struct SpecSchema: Sendable {
    struct Property: Sendable {
        var type: String
        var required: Bool
        var allowedValues: [String]?
    }

    struct Model: Sendable {
        var id: String
        var properties: [String: Property]
        var subTypes: [String]
        var discriminator: String?
    }

    let models: [String: Model]
    let parents: [String: String]
    /// Types referenced by the shipped files but defined in resource files that are not shipped.
    let missingModels: Set<String> = [
        "DeviceState", "Endpoint", "Bridge", "Playback", "LiveRecording", "Mailbox",
        "Sound", "StoredRecording", "TextMessage",
    ]
    let directory: String

    static func load(directory: String = TestFixtures.ariSpec) throws -> SpecSchema {
        let files = try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasSuffix(".json") }
        var models: [String: Model] = [:]
        for file in files.sorted() {
            let text = try String(contentsOfFile: directory + "/" + file, encoding: .utf8)
            guard case .object(let modelMembers)? = try JSONValue.parse(text)["models"] else { continue }
            for (name, definition) in modelMembers {
                var properties: [String: Property] = [:]
                if case .object(let propertyMembers)? = definition["properties"] {
                    for (propertyName, property) in propertyMembers {
                        var allowed: [String]?
                        if let values = property["allowableValues"]?["values"]?.arrayValue {
                            allowed = values.compactMap(\.stringValue)
                        }
                        properties[propertyName] = Property(
                            type: property["type"]?.stringValue ?? "object",
                            required: property["required"]?.boolValue ?? false,
                            allowedValues: allowed
                        )
                    }
                }
                models[name] = Model(
                    id: name,
                    properties: properties,
                    subTypes: definition["subTypes"]?.arrayValue?.compactMap(\.stringValue) ?? [],
                    discriminator: definition["discriminator"]?.stringValue
                )
            }
        }
        var parents: [String: String] = [:]
        for model in models.values {
            for subType in model.subTypes { parents[subType] = model.id }
        }
        return SpecSchema(models: models, parents: parents, directory: directory)
    }

    /// Whether `model` is `ancestor` or derives from it.
    func isKind(_ model: String, of ancestor: String) -> Bool {
        var current: String? = model
        while let name = current {
            if name == ancestor { return true }
            current = self.parents[name]
        }
        return false
    }

    /// Properties of a model and of its ancestors.
    func allProperties(of model: String) -> [String: Property] {
        var result: [String: Property] = [:]
        var current: String? = model
        while let name = current, let definition = self.models[name] {
            result.merge(definition.properties) { own, _ in own }
            current = self.parents[name]
        }
        return result
    }

    /// Validates an event (a `Message` whose `type` names an `Event` subtype).
    func validateEvent(_ text: String) -> [String] {
        guard let value = try? JSONValue.parse(text) else { return ["not JSON: \(text.prefix(200))"] }
        guard let type = value["type"]?.stringValue else { return ["event without type"] }
        guard self.models[type] != nil, self.isKind(type, of: "Event") else { return ["\(type) is not an Event model"] }
        return self.validate(value, as: type, path: type, strict: true)
    }

    /// Validates `value` against a declared type. With `strict`, properties the model does not declare
    /// are errors too (they would be a simulator typo: real Asterisk events only carry declared ones).
    func validate(_ value: JSONValue, as type: String, path: String, strict: Bool = true) -> [String] {
        if type.hasPrefix("List["), type.hasSuffix("]") {
            let element = String(type.dropFirst(5).dropLast())
            guard case .array(let values) = value else { return ["\(path): expected array for \(type), got \(value)"] }
            return values.enumerated().flatMap {
                self.validate($1, as: element, path: "\(path)[\($0)]", strict: strict)
            }
        }
        switch type {
        case "string":
            return value.stringValue == nil ? ["\(path): expected string, got \(value)"] : []
        case "int", "long":
            return value.intValue == nil ? ["\(path): expected integer, got \(value)"] : []
        case "double", "float":
            if case .number = value { return [] }
            return ["\(path): expected number, got \(value)"]
        case "boolean":
            return value.boolValue == nil ? ["\(path): expected boolean, got \(value)"] : []
        case "Date":
            guard let text = value.stringValue, ARITimestamp.parse(text) != nil else {
                return ["\(path): expected Date, got \(value)"]
            }
            return []
        case "object":
            if case .object = value { return [] }
            return ["\(path): expected object, got \(value)"]
        default:
            break
        }
        guard self.models[type] != nil else {
            // A model of a resource file not shipped in ari-spec (e.g. `DeviceState` of deviceStates.json):
            // nothing to check it against. Top-level event types are checked in `validateEvent`.
            return self.missingModels.contains(type) ? [] : ["\(path): unknown type \(type)"]
        }
        guard case .object(let members) = value else { return ["\(path): expected \(type) object, got \(value)"] }
        // A discriminated base type is validated as the subtype its discriminator names.
        if let discriminator = self.models[type]?.discriminator, let concrete = value[discriminator]?.stringValue,
            concrete != type, self.models[concrete] != nil, self.isKind(concrete, of: type)
        {
            return self.validate(value, as: concrete, path: path, strict: strict)
        }
        var errors: [String] = []
        let properties = self.allProperties(of: type)
        for (name, property) in properties.sorted(by: { $0.key < $1.key }) {
            let member = members.first { $0.0 == name }?.1
            guard let member, member != .null else {
                if property.required { errors.append("\(path).\(name): required property missing") }
                continue
            }
            errors += self.validate(member, as: property.type, path: "\(path).\(name)", strict: strict)
            if let allowed = property.allowedValues, let text = member.stringValue, !allowed.contains(text) {
                errors.append("\(path).\(name): \(text) not in \(allowed)")
            }
        }
        if strict {
            for (name, _) in members where properties[name] == nil {
                errors.append("\(path).\(name): not declared in \(type)")
            }
        }
        return errors
    }
}
